"""`neuralcli distill`."""

from __future__ import annotations

from typing import Annotated

import typer

from neuralcli.cli.common import handle_errors
from neuralcli.cli.runtime_options import (
    CompileOption,
    DeviceOption,
    PrecisionOption,
    SeedOption,
)
from neuralcli.cli.train import NameOption, PresetOption, ResumeOption, SetOption, _train
from neuralcli.config.schemas import stage_config
from neuralcli.pipelines.train_paired import distill as distill_pipeline

EXAMPLE = (
    "Example: neuralcli distill --preset distilled-lfp-quick --session s03 --teacher ms-spike-quick"
)


@handle_errors
def distill(
    session: Annotated[
        str | None, typer.Option("--session", help="The session to distill (its LFP and spikes)")
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option("--teacher", help="Trained spike teacher run (path, runs/<name> or name)"),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option("--init", help="Start the student from this LFP run's table of the session"),
    ] = None,
    preset: PresetOption = "distilled-lfp",
    set_: SetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
    compile: CompileOption = None,
) -> None:
    """Distil a frozen spike teacher into one session's LFP model: LFP reconstruction plus
    λ·(1 − cosine similarity) of per-time-step student and teacher latents."""
    config = stage_config(
        preset,
        "distill",
        set_,
        assign={"name": name, "session": session, "teacher": teacher, "init": init},
    )
    _train(
        "distill",
        distill_pipeline,
        config,
        resume=resume,
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
    )
