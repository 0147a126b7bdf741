"""`neuralcli train ae|diffusion|spike-history|teacher|student`."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from neuralcli.cli.common import (
    RichReporter,
    describe_setup,
    emit,
    handle_errors,
    key_value_table,
    options,
)
from neuralcli.cli.runtime_options import (
    CompileOption,
    DeviceOption,
    PrecisionOption,
    SeedOption,
    make_runtime,
)
from neuralcli.config.build import build_config
from neuralcli.config.schemas import SpikeHistoryRunConfig, stage_config
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.train_ae import TrainRunResult, train_autoencoder
from neuralcli.pipelines.train_diffusion import train_diffusion
from neuralcli.pipelines.train_paired import train_student, train_teacher
from neuralcli.pipelines.train_spike_history import train_spike_history
from neuralcli.runtime.allocator import tune_allocator
from neuralcli.runtime.checkpoint import read_model_meta

app = typer.Typer(help="Train models.", no_args_is_help=True)

PresetOption = Annotated[
    str, typer.Option("--preset", "-p", help="Preset name in presets/ or a path to a YAML file")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set training.lr=5e-4 (repeatable)"),
]
NameOption = Annotated[str | None, typer.Option("--name", help="Run name (folder under runs/)")]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue from the run's last checkpoint (state.pt)")
]


def _train(
    stage: str,
    run: Callable[..., TrainRunResult],
    config: Any,
    *,
    resume: bool,
    device: str | None,
    precision: str | None,
    seed: int | None,
    compile: bool | None,
) -> None:
    """Resolve the runtime, run one training pipeline with progress bars, print its summary."""
    runtime = make_runtime(device, precision, seed, compile)
    describe_setup(config, runtime)
    with RichReporter() as reporter:
        result = run(
            config, home=options().home_path, runtime=runtime, resume=resume, reporter=reporter
        )
    train = result.train
    payload = {
        "run_dir": str(result.run_dir),
        "steps": train.steps,
        "epochs": train.epochs,
        "train_loss": train.train_loss,
        "val_loss": train.val_loss,
        "samples_per_s": train.samples_per_s,
        "seconds": train.seconds,
    }
    emit(payload, key_value_table(f"train {stage}: {result.run_dir.name}", payload))


@app.command("ae", epilog="Example: neuralcli train ae --preset lorenz --set training.lr=5e-4")
@handle_errors
def train_ae(
    preset: PresetOption = "lorenz",
    set_: SetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
    compile: CompileOption = None,
) -> None:
    """Train the spike autoencoder (LDNS stage 1) on the preset's dataset."""
    tune_allocator()  # LDNS steps reuse heap pages (runtime/allocator.py)
    config = stage_config(preset, "ae", set_, assign={"name": name})
    _train(
        "ae",
        train_autoencoder,
        config,
        resume=resume,
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
    )


@app.command(
    "diffusion",
    epilog="Example: neuralcli train diffusion --preset lorenz --ae runs/ae-lorenz",
)
@handle_errors
def train_diffusion_command(
    preset: PresetOption = "lorenz",
    ae: Annotated[
        str | None,
        typer.Option("--ae", help="Trained autoencoder run (path, runs/<name> or name)"),
    ] = None,
    set_: SetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
    compile: CompileOption = None,
) -> None:
    """Train the latent diffusion model (LDNS stage 2) on a trained autoencoder's latents."""
    tune_allocator()  # LDNS steps reuse heap pages (runtime/allocator.py)
    config = stage_config(preset, "diffusion", set_, assign={"name": name, "ae": ae})
    _train(
        "diffusion",
        train_diffusion,
        config,
        resume=resume,
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
    )


def spike_history_config(
    ae: str, preset: str | None, overrides: list[str] | None, name: str | None
) -> SpikeHistoryRunConfig:
    """The run config: the preset's `spike-history` section, or else the defaults (LDNS §5)
    sized to the AE: model.n_neurons from its model.json, named after it (ae-monkey ->
    spike-history-monkey)."""
    if preset is not None:
        return stage_config(preset, "spike-history", overrides, assign={"name": name})
    ae_dir = resolve_run_dir(ae, options().home_path)
    meta = read_model_meta(ae_dir, expected_kind=SpikeAutoencoder.kind)
    ae_name = ae_dir.name.removeprefix("ae-") or ae_dir.name
    section = {
        "name": name or f"spike-history-{ae_name}",
        "model": {"n_neurons": meta["config"].get("n_neurons")},
    }
    return build_config(SpikeHistoryRunConfig, section, overrides)


@app.command(
    "spike-history",
    epilog=(
        "Example: neuralcli train spike-history --ae runs/ae-monkey --set training.epochs=3000"
    ),
)
@handle_errors
def train_spike_history_command(
    ae: Annotated[
        str,
        typer.Option("--ae", help="Trained autoencoder run whose rates the GLM refines"),
    ],
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="Preset with a spike-history section (default: LDNS §5 recipe sized to the AE)",
        ),
    ] = None,
    set_: SetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
    compile: CompileOption = None,
) -> None:
    """Fit the spike-history GLM ("LDNS + spike history", LDNS §5) teacher-forced on the AE's
    training spikes and log rates; writes runs/<name>/ with model.json recording the AE."""
    tune_allocator()  # LDNS steps reuse heap pages (runtime/allocator.py)
    config = spike_history_config(ae, preset, set_, name)
    _train(
        "spike-history",
        functools.partial(train_spike_history, ae_run=ae),
        config,
        resume=resume,
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
    )


SessionsOption = Annotated[
    str | None,
    typer.Option(
        "--sessions",
        help="Comma-separated sessions to train on (name, or dataset:name) [default: preset's]",
    ),
]
FinetuneOption = Annotated[
    str | None,
    typer.Option("--finetune", help="Start from this trained run; new sessions get new tables"),
]


def paired_overrides(
    sessions: str | None, session: str | None, finetune: str | None, set_: list[str] | None
) -> list[str]:
    """CLI shortcuts as --set overrides placed before the user's own (which win)."""
    if sessions is not None and session is not None:
        raise typer.BadParameter("give --sessions or --session, not both", param_hint="--session")
    overrides = []
    chosen = [session] if session else _split_list(sessions) if sessions else None
    if chosen is not None:
        overrides.append(f"data.sessions={json.dumps(chosen)}")
    if finetune:
        overrides.append(f"finetune.from_run={json.dumps(finetune)}")
    return overrides + list(set_ or [])


def _split_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise typer.BadParameter("names no session", param_hint="--sessions")
    return items


@app.command(
    "teacher",
    epilog="Example: neuralcli train teacher --preset ms-spike-quick",
)
@handle_errors
def train_teacher_command(
    preset: PresetOption = "ms-spike",
    sessions: SessionsOption = None,
    finetune: FinetuneOption = None,
    set_: SetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
    compile: CompileOption = None,
) -> None:
    """Train the multi-session spike teacher: masked modelling of spike tokens, Poisson NLL."""
    overrides = paired_overrides(sessions, None, finetune, set_)
    config = stage_config(preset, "teacher", overrides, assign={"name": name})
    _train(
        "teacher",
        train_teacher,
        config,
        resume=resume,
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
    )


@app.command(
    "student",
    epilog=(
        "Examples: neuralcli train student --preset ms-lfp-quick ; neuralcli train student "
        "--preset ms-lfp --finetune runs/ms-lfp --session 20160622_01"
    ),
)
@handle_errors
def train_student_command(
    preset: PresetOption = "ms-lfp",
    sessions: SessionsOption = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Train (fine-tune) on this one session")
    ] = None,
    finetune: FinetuneOption = None,
    set_: SetOption = None,
    name: NameOption = None,
    resume: ResumeOption = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
    compile: CompileOption = None,
) -> None:
    """Train the multi-session LFP model (MS-LFP: masked LFP reconstruction), or fine-tune a
    trained one on new sessions with --finetune."""
    overrides = paired_overrides(sessions, session, finetune, set_)
    config = stage_config(preset, "student", overrides, assign={"name": name})
    _train(
        "student",
        train_student,
        config,
        resume=resume,
        device=device,
        precision=precision,
        seed=seed,
        compile=compile,
    )
