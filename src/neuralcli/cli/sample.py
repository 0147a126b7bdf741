"""`neuralcli sample`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuralcli.cli.common import RichReporter, emit, handle_errors, key_value_table, options
from neuralcli.cli.runtime_options import DeviceOption, PrecisionOption, SeedOption, make_runtime
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.sample import sample_spikes

EXAMPLE = (
    "Example: neuralcli sample --model runs/diffusion-lorenz --n 1000 --sampler ddim --steps 50"
)


@handle_errors
def sample(
    model: Annotated[str, typer.Option("--model", "-m", help="Trained diffusion run")],
    n: Annotated[int, typer.Option("--n", help="Number of trials to sample")] = 1000,
    length: Annotated[
        int | None, typer.Option("--length", help="Bins per trial [default: training length]")
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
    runtime = make_runtime(device, precision, seed)
    run_dir = resolve_run_dir(model, options().home_path)
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
        "seconds": result.seconds,
        "mean_count_per_bin": result.mean_rate,
    }
    emit(payload, key_value_table("sample", payload))
