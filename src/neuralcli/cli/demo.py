"""`neuralcli demo`."""

from __future__ import annotations

from typing import Annotated

import typer

from neuralcli.cli.common import RichReporter, emit, handle_errors, options, stdout
from neuralcli.cli.evaluate import metrics_table
from neuralcli.cli.runtime_options import DeviceOption, PrecisionOption, SeedOption, make_runtime
from neuralcli.pipelines.demo import run_demo
from neuralcli.runtime.allocator import tune_allocator

EXAMPLE = "Example: neuralcli demo   (or: neuralcli demo --preset lorenz --sampler ddpm)"


@handle_errors
def demo(
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset with ae + diffusion")] = (
        "lorenz-quick"
    ),
    sampler: Annotated[str, typer.Option("--sampler", help="ddim or ddpm")] = "ddim",
    steps: Annotated[int | None, typer.Option("--steps", help="DDIM steps")] = 50,
    n: Annotated[
        int | None, typer.Option("--n", help="Samples to draw [default: size of the test split]")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override for both stages, e.g. training.max_steps=50"),
    ] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
) -> None:
    """Run LDNS on Lorenz end to end: data, autoencoder, diffusion, samples, evaluation, plots."""
    tune_allocator()  # LDNS training and sampling: see runtime/allocator.py
    runtime = make_runtime(device, precision, seed)
    with RichReporter() as reporter:
        result = run_demo(
            home=options().home_path,
            runtime=runtime,
            preset=preset,
            sampler=sampler.lower(),
            steps=None if sampler.lower() == "ddpm" else steps,
            n_samples=n,
            overrides=set_,
            reporter=reporter,
        )
    evaluation = result.evaluation
    payload = {
        "ae_run": str(result.ae.run_dir),
        "diffusion_run": str(result.diffusion.run_dir),
        "samples": str(result.samples.npz_path),
        "evaluation": evaluation.to_dict(),
        "seconds": {
            "ae": result.ae.train.seconds,
            "diffusion": result.diffusion.train.seconds,
            "sampling": result.samples.seconds,
        },
    }
    table = metrics_table(
        f"LDNS demo ({preset}): samples vs held-out test trials", evaluation, "LDNS samples"
    )
    table.caption = f"plots: {evaluation.plots[0].parent if evaluation.plots else '-'}"
    emit(payload, table)
    if not options().json:
        stdout.print(f"runs: {result.ae.run_dir}, {result.diffusion.run_dir}")
