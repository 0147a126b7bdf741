"""The reverse-diffusion loop: z_T ~ N(0, I) of any length → ε-model + scheduler steps → z_0.

Nothing here depends on the sequence length (LDNS §10): the denoiser is length-agnostic, so
`length` may be far longer than the training windows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from neuralcli.diffusion.ddim import DDIMScheduler
from neuralcli.diffusion.ddpm import DDPMScheduler
from neuralcli.errors import ConfigError

Scheduler = DDPMScheduler | DDIMScheduler
SCHEDULERS: dict[str, type[DDPMScheduler] | type[DDIMScheduler]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
}


def make_scheduler(
    name: str,
    *,
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> Scheduler:
    """A scheduler by name: "ddpm" (LDNS: 1000 ancestral steps) or "ddim" (few-step, ours)."""
    key = name.strip().lower()
    if key not in SCHEDULERS:
        raise ConfigError(f"sampler {name!r}: unknown sampler; use one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[key](
        num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end
    )


@torch.no_grad()
def sample_latents(
    model: nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: Scheduler,
    *,
    n: int,
    length: int,
    channels: int,
    device: torch.device | str,
    num_inference_steps: int | None = None,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    on_step: Callable[[int, int], None] | None = None,
    eta: float | None = None,
) -> torch.Tensor:
    """Draw `n` latent sequences z_0: (n, length, channels) float32 on `device`.

    model(x (B, T, C), timesteps (B,) int64) -> ε̂ (B, T, C); called in chunks of `batch_size`
    under `autocast()`; put it in eval mode first. Latents stay standardised: the caller
    un-standardises and decodes.

    Reproducibility: z_T is drawn on the CPU from `generator` (torch's global CPU RNG if None),
    so it is identical on every device. Step noise (DDPM, DDIM with η > 0) comes from a
    generator on `device` seeded from `generator`. All n sequences advance one step together
    and each step draws its noise for all of them at once, so for a given seed the samples
    do not depend on `batch_size`.
    on_step(done_steps, total_steps) is called after every denoising step.
    eta: DDIM's η (DDIM eq. 16), passed to `scheduler.step`; None leaves the scheduler's
    default (and is the only value DDPM accepts).
    """
    if n < 1 or length < 1 or channels < 1:
        raise ConfigError(
            f"n={n}, length={length}, channels={channels}: all must be at least 1 to sample"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be at least 1")
    device = torch.device(device)
    timesteps = scheduler.set_timesteps(num_inference_steps).tolist()

    latents = torch.randn((n, length, channels), generator=generator, dtype=torch.float32)
    latents = latents.to(device)  # (n, T, C) z_T
    noise_seed = int(torch.randint(0, 2**62, (), generator=generator))
    step_generator = torch.Generator(device=device)
    step_generator.manual_seed(noise_seed)

    extra = {} if eta is None else {"eta": eta}
    eps = torch.empty_like(latents)  # (n, T, C)
    for index, timestep in enumerate(timesteps):
        prev_timestep = timesteps[index + 1] if index + 1 < len(timesteps) else -1
        for start in range(0, n, batch_size):
            chunk = latents[start : start + batch_size]  # (B, T, C)
            t_chunk = torch.full((chunk.shape[0],), timestep, dtype=torch.int64, device=device)
            with autocast():
                # Writing into the float32 buffer undoes any autocast dtype.
                eps[start : start + batch_size] = model(chunk, t_chunk)
        latents = scheduler.step(
            eps, timestep, latents, prev_timestep=prev_timestep, generator=step_generator, **extra
        ).prev_sample  # (n, T, C)
        if on_step is not None:
            on_step(index + 1, len(timesteps))
    return latents
