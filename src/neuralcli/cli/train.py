"""`neuralcli train ae|diffusion`."""

from __future__ import annotations

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
from neuralcli.config.schemas import stage_config
from neuralcli.pipelines.train_ae import TrainRunResult, train_autoencoder
from neuralcli.pipelines.train_diffusion import train_diffusion

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
    emit(payload, key_value_table(f"train {stage}: {config.name}", payload))


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
