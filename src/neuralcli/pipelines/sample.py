"""`neuralcli sample`: latents from the diffusion model -> AE rates -> spikes.

Conditioned models (LDNS §9) sample with the condition they were trained on:

- angle: one reach angle per sample, fixed (`--angle`), uniform θ ~ U(−π, π), or the angles
  of a dataset split's trials (`--from`).
- velocity: hand-velocity traces (n, T, 2) in m/s from a split (`--from`) or a .npy file;
  the traces set n and the length.
- length (human): every sample denoises the model's whole window of `mask_length` bins with
  a centred mask of its length, is decoded, and keeps its masked bins; outputs of several
  lengths are right-padded to the longest with a `mask`.

Spikes are Poisson draws from the decoded rates or, with a spike-history GLM fit on the same
AE, autoregressive GLM draws driven by the log rates (LDNS §5).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuralcli.data.samples import write_samples_npz, write_samples_nwb
from neuralcli.diffusion.sampling import make_scheduler, sample_latents
from neuralcli.errors import ConfigError
from neuralcli.models.spike_history import SpikeHistoryGLM, log_rates_of
from neuralcli.pipelines.latents import decode_latents
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.sample_conditions import (
    ConditionRequest,
    DiffusionBundle,
    resolve_condition,
)
from neuralcli.pipelines.train_diffusion import AE_SUBDIR
from neuralcli.pipelines.train_spike_history import file_sha256
from neuralcli.runtime.checkpoint import WEIGHTS_FILE, read_model_meta
from neuralcli.runtime.device import Runtime

__all__ = ["ConditionRequest", "DiffusionBundle", "SampleResult", "keep_windows", "sample_spikes"]

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
    mean_rate: float  # spikes per bin, averaged over every real bin
    condition: dict = field(default_factory=lambda: {"kind": "none", "source": None})
    observation: str = "poisson"  # or "spike-history"


def sample_spikes(
    run_dir: Path,
    *,
    runtime: Runtime,
    n: int | None = None,
    length: int | None = None,
    sampler: str = "ddpm",
    steps: int | None = None,
    eta: float = 1.0,
    batch_size: int = 512,
    out: Path | None = None,
    write_nwb: bool = True,
    condition: ConditionRequest | None = None,
    spike_history: Path | None = None,
    home: Path | None = None,
    reporter: ProgressReporter | None = None,
) -> SampleResult:
    """Draw `n` spike trials of `length` bins (default: the training length).

    Writes `out` (.npz: spikes, rates, latents, metadata and the condition arrays that apply)
    and the same spikes as NWB beside it. `eta` is DDIM's η: 1 (default) samples
    stochastically like DDPM on the sub-sequence, whose statistics matched DDPM-1000 within
    the noise floor on Lorenz where η = 0 did not (README, "DDIM vs DDPM"); 0 is the
    deterministic ODE sampler.

    n: None = the number of trials a velocity or `--from` condition gives, else 1000; a
    smaller n takes the first n of them. `condition` (module docstring) defaults to the
    model's own with uniform angles / default lengths. `spike_history`: a spike-history run fit
    on this run's AE; spikes are then drawn from it (LDNS §5) instead of Poisson. `home` is
    needed for `condition.from_split`.
    """
    reporter = reporter or SilentReporter()
    condition = condition or ConditionRequest()
    if n is not None and n < 1:
        raise ConfigError(f"--n {n}: the number of samples must be at least 1")
    if length is not None and length < 1:
        raise ConfigError(f"--length {length}: the length must be at least 1 bin")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler {sampler!r}: use one of {', '.join(SAMPLERS)}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    out = Path(out) if out is not None else run_dir / "samples.npz"
    if out.suffix != ".npz":
        raise ConfigError(f"--out {out}: the samples file must end in .npz")
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
    glm, glm_meta = (None, None)
    if spike_history is not None:
        glm, glm_meta = load_spike_history(spike_history, run_dir, bundle)
    resolved = resolve_condition(
        condition, bundle=bundle, n=n, length=length, home=home, seed=runtime.seed
    )
    n = resolved.n
    if resolved.kind == "length":
        denoised_length = resolved.window
    elif resolved.velocity is not None:
        denoised_length = int(resolved.velocity.shape[1])
    else:
        denoised_length = int(length or bundle.meta["train_length"])
    model_inputs = {
        "angle": resolved.angle,
        "velocity": resolved.velocity,
        "mask": resolved.centred_mask(),
    }
    model_inputs = {k: torch.from_numpy(v) for k, v in model_inputs.items() if v is not None}

    scheduler = make_scheduler(sampler, **schedule)
    generator = torch.Generator().manual_seed(runtime.seed)
    task = f"sample {sampler}-{steps}"
    reporter.start(task, steps)
    started = time.perf_counter()
    latents = sample_latents(
        bundle.denoiser,
        scheduler,
        n=n,
        length=denoised_length,
        channels=bundle.denoiser.config.latent_channels,
        device=runtime.device,
        num_inference_steps=steps,
        batch_size=batch_size,
        generator=generator,
        autocast=runtime.autocast,
        on_step=lambda done, total: reporter.update(task, done),
        eta=eta if sampler == "ddim" else None,
        **model_inputs,
    )
    reporter.finish(task)
    latents = bundle.stats.unstandardise(latents.float())
    rates = decode_latents(bundle.autoencoder, latents, batch_size=batch_size).cpu()  # (n, T, N)
    latents = latents.cpu()  # (n, T, d)
    mask = None
    if resolved.kind == "length":
        # LDNS §9: decode the whole window, keep each sample's centred bins, right-pad.
        latents, mask = keep_windows(latents, resolved.window_starts(), resolved.lengths)
        rates, _ = keep_windows(rates, resolved.window_starts(), resolved.lengths)
    if glm is not None:
        reporter.message(f"drawing spikes from the spike-history GLM in {spike_history}")
        spikes = glm.sample(log_rates_of(rates), generator=generator)  # (n, T, N) LDNS §5
    else:
        spikes = torch.poisson(rates, generator=generator)  # (n, T, N)
    if mask is not None:
        spikes = spikes * torch.from_numpy(mask)[..., None].to(spikes.dtype)  # padding: none
    seconds = time.perf_counter() - started

    spikes_np = spikes.numpy()
    spikes_np = spikes_np.astype(np.uint8 if spikes_np.max(initial=0) < 256 else np.int32)
    output_length = int(spikes_np.shape[1])
    arrays = {
        name: value
        for name, value in (
            ("condition_angle", resolved.angle),
            ("condition_velocity", resolved.velocity),
            ("mask", mask),
        )
        if value is not None
    }
    bin_seconds = float(bundle.meta.get("bin_seconds") or 1.0)
    observation = "spike-history" if glm is not None else "poisson"
    metadata = {
        "run": str(run_dir),
        "sampler": sampler,
        "steps": steps,
        "eta": eta if sampler == "ddim" else None,
        "seed": runtime.seed,
        "n": n,
        "length": output_length,
        "bin_seconds": bin_seconds,
        "data": bundle.meta.get("data"),
        "model_step": bundle.meta.get("step"),
        "condition": resolved.describe(),
        "observation": observation,
    }
    if resolved.lengths is not None:
        metadata["lengths"] = resolved.lengths.tolist()
        metadata["mask_length"] = resolved.window
    if glm_meta is not None:
        metadata["spike_history"] = glm_meta
    write_samples_npz(
        out,
        spikes=spikes_np,
        rates=rates.numpy().astype(np.float32),
        latents=latents.numpy().astype(np.float32),
        bin_seconds=bin_seconds,
        metadata=metadata,
        **arrays,
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
            **arrays,
        )
    real = spikes_np if mask is None else spikes_np[mask.astype(bool)]
    return SampleResult(
        npz_path=out,
        nwb_path=nwb_path,
        n=n,
        length=output_length,
        n_neurons=int(spikes_np.shape[-1]),
        sampler=sampler,
        steps=steps,
        seconds=seconds,
        mean_rate=float(real.mean()),
        condition=resolved.describe(),
        observation=observation,
    )


def load_spike_history(
    glm_dir: Path, run_dir: Path, bundle: DiffusionBundle
) -> tuple[SpikeHistoryGLM, dict]:
    """The GLM of a spike-history run, checked to be fit on this diffusion run's AE.

    Returns the model (on the CPU, where the spikes are drawn) and what the samples'
    metadata records about it.
    """
    meta = read_model_meta(glm_dir, expected_kind=SpikeHistoryGLM.kind)
    ae_sha = file_sha256(run_dir / AE_SUBDIR / WEIGHTS_FILE)
    if meta.get("ae_sha256") != ae_sha:
        raise ConfigError(
            f"--spike-history {glm_dir}: the GLM was fit on another autoencoder "
            f"({meta.get('ae_source', 'unknown')}) than {run_dir.name}'s; train one with "
            f"`neuralcli train spike-history --ae {meta.get('ae_source') or '<that AE run>'}` "
            "using the AE of this diffusion run"
        )
    glm = SpikeHistoryGLM.from_pretrained(glm_dir, device="cpu")
    n_neurons = bundle.autoencoder.config.n_neurons
    if glm.config.n_neurons != n_neurons:
        raise ConfigError(
            f"--spike-history {glm_dir}: the GLM models {glm.config.n_neurons} neurons but the "
            f"autoencoder {n_neurons}; pass a GLM fit on this run's autoencoder"
        )
    record = {"run": str(glm_dir), "ae_sha256": ae_sha, "model_step": meta.get("step")}
    return glm, record


def keep_windows(
    values: torch.Tensor, starts: np.ndarray, lengths: np.ndarray
) -> tuple[torch.Tensor, np.ndarray]:
    """Cut bins start..start+L of every sample and right-pad them with zeros to the longest.

    values (n, W, C), starts and lengths (n,) -> ((n, max L, C), mask (n, max L) uint8).
    """
    longest = int(lengths.max())
    kept = values.new_zeros((values.shape[0], longest, values.shape[-1]))  # (n, T, C)
    mask = np.zeros((values.shape[0], longest), dtype=np.uint8)  # (n, T)
    for row, (start, count) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        kept[row, :count] = values[row, start : start + count]
        mask[row, :count] = 1
    return kept, mask
