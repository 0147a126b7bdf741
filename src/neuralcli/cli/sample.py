"""`neuralcli sample`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuralcli.cli.common import RichReporter, emit, handle_errors, key_value_table, options
from neuralcli.cli.runtime_options import DeviceOption, PrecisionOption, SeedOption, make_runtime
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.sample import ConditionRequest, sample_spikes
from neuralcli.runtime.allocator import tune_allocator

EXAMPLE = (
    "Example: neuralcli sample --model runs/diffusion-lorenz --n 1000 --sampler ddim --steps 50\n\n"
    "Conditioned: --condition angle --angle 45 | --condition velocity --from mc_maze:test | "
    "--velocity traces.npy (n, time, 2) | --length 300 (length-conditioned human model); "
    "--spike-history runs/spike-history-monkey draws spikes from a spike-history GLM"
)


@handle_errors
def sample(
    model: Annotated[str, typer.Option("--model", "-m", help="Trained diffusion run")],
    n: Annotated[
        int | None,
        typer.Option(
            "--n", help="Number of trials (default 1000, or all trials of --from/--velocity)"
        ),
    ] = None,
    length: Annotated[
        int | None,
        typer.Option(
            "--length",
            help="Bins per trial (default: training length; length models: 100..window)",
        ),
    ] = None,
    condition: Annotated[
        str | None,
        typer.Option(
            "--condition", help="none|angle|velocity|length (default: the model's condition)"
        ),
    ] = None,
    angle: Annotated[
        float | None,
        typer.Option("--angle", help="Reach angle in degrees for every sample (default: uniform)"),
    ] = None,
    from_split: Annotated[
        str | None,
        typer.Option(
            "--from", help="dataset:split whose trials give the condition, e.g. mc_maze:test"
        ),
    ] = None,
    velocity: Annotated[
        Path | None,
        typer.Option("--velocity", help=".npy of velocity traces (n, time, 2) in m/s"),
    ] = None,
    spike_history: Annotated[
        str | None,
        typer.Option(
            "--spike-history", help="Spike-history run fit on this AE: draw spikes from its GLM"
        ),
    ] = None,
    sampler: Annotated[str, typer.Option("--sampler", help="ddpm (1000 steps) or ddim")] = "ddpm",
    steps: Annotated[
        int | None, typer.Option("--steps", help="Sampling steps (ddim; default 50)")
    ] = None,
    eta: Annotated[
        float, typer.Option("--eta", help="DDIM eta: 1 stochastic (like DDPM), 0 deterministic")
    ] = 1.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Trials per batch")] = 512,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output .npz [default: <run>/samples.npz]")
    ] = None,
    nwb: Annotated[bool, typer.Option("--nwb/--no-nwb", help="Also write an NWB file")] = True,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: SeedOption = None,
) -> None:
    """Sample spike trains of any length from a trained latent diffusion model."""
    tune_allocator()  # LDNS sampling reallocates the same large tensors every step
    runtime = make_runtime(device, precision, seed)
    home = options().home_path
    run_dir = resolve_run_dir(model, home)
    glm_dir = resolve_run_dir(spike_history, home) if spike_history is not None else None
    request = ConditionRequest(
        kind=condition.lower() if condition is not None else None,
        angle_degrees=angle,
        from_split=from_split,
        velocity_file=velocity,
    )
    with RichReporter() as reporter:
        result = sample_spikes(
            run_dir,
            runtime=runtime,
            n=n,
            length=length,
            sampler=sampler.lower(),
            steps=steps,
            eta=eta,
            batch_size=batch_size,
            out=out,
            write_nwb=nwb,
            condition=request,
            spike_history=glm_dir,
            home=home,
            reporter=reporter,
        )
    payload = {
        "npz": str(result.npz_path),
        "nwb": str(result.nwb_path) if result.nwb_path else None,
        "n": result.n,
        "length": result.length,
        "neurons": result.n_neurons,
        "sampler": result.sampler,
        "steps": result.steps,
        "condition": result.condition["kind"],
        "condition_source": result.condition["source"],
        "spikes_from": result.observation,
        "seconds": result.seconds,
        "mean_count_per_bin": result.mean_rate,
    }
    emit(payload, key_value_table("sample", payload))
