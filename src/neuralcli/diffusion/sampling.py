"""The reverse-diffusion loop: z_T ~ N(0, I) of any length → ε-model + scheduler steps → z_0.

Nothing here depends on the sequence length (LDNS §10): the denoiser is length-agnostic, so
`length` may be far longer than the training windows.

Conditioned sampling (LDNS §9): an angle (n,), a velocity (n, T, 2) or a mask (n, T) is handed
to the model at every step, unchanged (the clean velocity is concatenated to the noisy latents
inside the denoiser); a velocity or a mask also fixes the length T. Unconditional models are
called as model(x, t) exactly as before.
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
    model: nn.Module | Callable[..., torch.Tensor],
    scheduler: Scheduler,
    *,
    n: int,
    length: int | None = None,
    channels: int,
    device: torch.device | str,
    num_inference_steps: int | None = None,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    on_step: Callable[[int, int], None] | None = None,
    eta: float | None = None,
    angle: torch.Tensor | None = None,
    velocity: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw `n` latent sequences z_0: (n, length, channels) float32 on `device`.

    model(x (B, T, C), timesteps (B,) int64[, angle=, velocity=, mask=]) -> ε̂ (B, T, C);
    called in chunks of `batch_size` under `autocast()`; put it in eval mode first. Latents
    stay standardised: the caller un-standardises and decodes.

    Conditions (LDNS §9), each given to the model for every step, sliced like the chunk:
    angle (n,) radians; velocity (n, T, 2) clean velocity in m/s; mask (n, T) 1 = real bin.
    A velocity or a mask sets T; `length` may then be omitted (or must agree). Without them
    `length` is required and may be any length (LDNS §10).

    Reproducibility: z_T is drawn on the CPU from `generator` (torch's global CPU RNG if None),
    so it is identical on every device. Step noise (DDPM, DDIM with η > 0) comes from a
    generator on `device` seeded from `generator`. All n sequences advance one step together
    and each step draws its noise for all of them at once, so for a given seed the samples
    do not depend on `batch_size`, nor on the condition.
    on_step(done_steps, total_steps) is called after every denoising step.
    eta: DDIM's η (DDIM eq. 16), passed to `scheduler.step`; None leaves the scheduler's
    default (and is the only value DDPM accepts).
    """
    device = torch.device(device)
    conditions = _conditions(n, length, device, angle=angle, velocity=velocity, mask=mask)
    for name in ("velocity", "mask"):
        if name in conditions:
            length = conditions[name].shape[1] if length is None else length
    if length is None:
        raise ConfigError("give the length of the samples (or a velocity or mask that sets it)")
    if n < 1 or length < 1 or channels < 1:
        raise ConfigError(
            f"n={n}, length={length}, channels={channels}: all must be at least 1 to sample"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: must be at least 1")
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
            chunk_conditions = {
                name: value[start : start + batch_size] for name, value in conditions.items()
            }
            with autocast():
                # Writing into the float32 buffer undoes any autocast dtype.
                eps[start : start + batch_size] = model(chunk, t_chunk, **chunk_conditions)
        latents = scheduler.step(
            eps, timestep, latents, prev_timestep=prev_timestep, generator=step_generator, **extra
        ).prev_sample  # (n, T, C)
        if on_step is not None:
            on_step(index + 1, len(timesteps))
    return latents


def _conditions(
    n: int,
    length: int | None,
    device: torch.device,
    **given: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """The given conditions as float32 on `device`, checked against n and length (ConfigError)."""
    trailing = {"angle": (), "velocity": (2,), "mask": ()}
    conditions = {}
    for name, value in given.items():
        if value is None:
            continue
        value = torch.as_tensor(value)
        has_time = name != "angle"
        expected_ndim = 1 + has_time + len(trailing[name])
        if value.ndim != expected_ndim or tuple(value.shape[1 + has_time :]) != trailing[name]:
            shape = "(n,)" if name == "angle" else "(n, T, 2)" if name == "velocity" else "(n, T)"
            raise ConfigError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
        if value.shape[0] != n:
            raise ConfigError(f"{name} holds {value.shape[0]} conditions but n={n} samples")
        if has_time and length is not None and value.shape[1] != length:
            raise ConfigError(
                f"{name} has {value.shape[1]} bins but length={length}; omit length or match it"
            )
        conditions[name] = value.to(device=device, dtype=torch.float32)
    if "velocity" in conditions and "mask" in conditions:
        if conditions["velocity"].shape[1] != conditions["mask"].shape[1]:
            raise ConfigError("velocity and mask must have the same number of bins")
    return conditions
