"""`neuralcli sample`: latents from the diffusion model -> AE rates -> Poisson spikes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuralcli.data.samples import write_samples_npz, write_samples_nwb
from neuralcli.diffusion.sampling import make_scheduler, sample_latents
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser
from neuralcli.pipelines.latents import LatentStats, decode_latents
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.train_diffusion import AE_SUBDIR
from neuralcli.runtime.checkpoint import read_model_meta
from neuralcli.runtime.device import Runtime

SAMPLERS = ("ddpm", "ddim")


@dataclass
class SampleResult:
    npz_path: Path
    nwb_path: Path | None
    n: int
    length: int
    n_neurons: int
    sampler: str
    steps: int
    seconds: float
    mean_rate: float  # spikes per bin, averaged over everything


@dataclass(frozen=True)
class DiffusionBundle:
    """A trained diffusion run: denoiser, its AE, latent statistics and training facts."""

    run_dir: Path
    denoiser: Denoiser
    autoencoder: SpikeAutoencoder
    stats: LatentStats
    meta: dict

    @classmethod
    def load(cls, run_dir: Path, device: torch.device) -> DiffusionBundle:
        meta = read_model_meta(run_dir, expected_kind=Denoiser.kind)
        return cls(
            run_dir=run_dir,
            denoiser=Denoiser.from_pretrained(run_dir, device=device),
            autoencoder=SpikeAutoencoder.from_pretrained(run_dir / AE_SUBDIR, device=device),
            stats=LatentStats.from_meta(meta["latent_stats"]),
            meta=meta,
        )


def sample_spikes(
    run_dir: Path,
    *,
    runtime: Runtime,
    n: int,
    length: int | None = None,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    batch_size: int = 512,
    out: Path | None = None,
    write_nwb: bool = True,
    reporter: ProgressReporter | None = None,
) -> SampleResult:
    """Draw `n` spike trials of `length` bins (default: the training length).

    Writes `out` (.npz: spikes, rates, latents, metadata) and the same spikes as NWB beside it.
    `eta` is DDIM's η: 1 (default) samples stochastically like DDPM on the sub-sequence, whose
    statistics matched DDPM-1000 within the noise floor on Lorenz where η = 0 did not
    (README, "DDIM vs DDPM"); 0 is the deterministic ODE sampler.
    """
    reporter = reporter or SilentReporter()
    if n < 1:
        raise ConfigError(f"--n {n}: the number of samples must be at least 1")
    if length is not None and length < 1:
        raise ConfigError(f"--length {length}: the length must be at least 1 bin")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    bundle = DiffusionBundle.load(run_dir, runtime.device)
    schedule = bundle.meta["diffusion"]
    total_steps = int(schedule["num_train_timesteps"])
    if sampler == "ddpm":
        steps = total_steps if steps is None else steps
        if steps != total_steps:
            raise ConfigError(
                f"--steps {steps}: DDPM runs all {total_steps} steps; use --sampler ddim for fewer"
            )
    else:
        steps = 50 if steps is None else steps
        if not 1 <= steps <= total_steps:
            raise ConfigError(f"--steps {steps}: DDIM needs 1..{total_steps} steps")
        if not 0.0 <= eta <= 1.0:
            raise ConfigError(f"--eta {eta}: DDIM's eta must be between 0 and 1")
    length = int(length or bundle.meta["train_length"])
    out = Path(out) if out is not None else run_dir / "samples.npz"
    if out.suffix != ".npz":
        raise ConfigError(f"--out {out}: the samples file must end in .npz")

    scheduler = make_scheduler(sampler, **schedule)
    generator = torch.Generator().manual_seed(runtime.seed)
    task = f"sample {sampler}-{steps}"
    reporter.start(task, steps)
    started = time.perf_counter()
    latents = sample_latents(
        bundle.denoiser,
        scheduler,
        n=n,
        length=length,
        channels=bundle.denoiser.config.latent_channels,
        device=runtime.device,
        num_inference_steps=steps,
        batch_size=batch_size,
        generator=generator,
        autocast=runtime.autocast,
        on_step=lambda done, total: reporter.update(task, done),
        eta=eta if sampler == "ddim" else None,
    )
    reporter.finish(task)
    latents = bundle.stats.unstandardise(latents.float())
    rates = decode_latents(bundle.autoencoder, latents, batch_size=batch_size)
    spikes = torch.poisson(rates.cpu(), generator=generator)
    seconds = time.perf_counter() - started

    spikes_np = spikes.numpy()
    spikes_np = spikes_np.astype(np.uint8 if spikes_np.max(initial=0) < 256 else np.int32)
    bin_seconds = float(bundle.meta.get("bin_seconds") or 1.0)
    metadata = {
        "run": str(run_dir),
        "sampler": sampler,
        "steps": steps,
        "eta": eta if sampler == "ddim" else None,
        "seed": runtime.seed,
        "n": n,
        "length": length,
        "bin_seconds": bin_seconds,
        "data": bundle.meta.get("data"),
        "model_step": bundle.meta.get("step"),
    }
    write_samples_npz(
        out,
        spikes=spikes_np,
        rates=rates.cpu().numpy().astype(np.float32),
        latents=latents.cpu().numpy().astype(np.float32),
        bin_seconds=bin_seconds,
        metadata=metadata,
    )
    nwb_path = None
    if write_nwb:
        nwb_path = out.with_suffix(".nwb")
        write_samples_nwb(
            nwb_path,
            spikes=spikes_np,
            bin_seconds=bin_seconds,
            metadata=metadata,
            session_description=f"LDNS samples from {run_dir.name} ({sampler}, {steps} steps)",
        )
    return SampleResult(
        npz_path=out,
        nwb_path=nwb_path,
        n=n,
        length=length,
        n_neurons=int(spikes_np.shape[-1]),
        sampler=sampler,
        steps=steps,
        seconds=seconds,
        mean_rate=float(spikes_np.mean()),
    )
