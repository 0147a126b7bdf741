"""The linear-β noise schedule shared by the DDPM and DDIM samplers (LDNS §8).

Notation follows Ho et al. 2020 ("DDPM"): β_t, α_t = 1 − β_t, ᾱ_t = Π_{s≤t} α_s, with
integer timesteps t ∈ {0, …, T−1} and ᾱ_{−1} := 1 (the clean data). Schedulers hold only
these constants: no parameters, no per-run state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from neuralcli.errors import ConfigError


class SchedulerStep(NamedTuple):
    """One reverse step t → t_prev."""

    prev_sample: torch.Tensor  # (B, ...) x_{t_prev}
    pred_original_sample: torch.Tensor  # (B, ...) x̂_0 implied by the model's ε̂


class LinearNoiseSchedule:
    """β_t linearly spaced from `beta_start` to `beta_end` over `num_train_timesteps` steps.

    Constants are float32 CPU tensors, as in the LDNS reference (diffusers 0.3.0); they are
    read as Python floats when a step is taken so steps work on any device and dtype.
    """

    def __init__(
        self,
        *,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
    ) -> None:
        if int(num_train_timesteps) != num_train_timesteps or num_train_timesteps < 1:
            raise ConfigError(
                f"num_train_timesteps={num_train_timesteps!r}: must be a positive integer "
                "(LDNS uses 1000)"
            )
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ConfigError(
                f"beta_start={beta_start}, beta_end={beta_end}: need "
                "0 < beta_start <= beta_end < 1 (LDNS uses 1e-4 and 0.02)"
            )
        self.num_train_timesteps = int(num_train_timesteps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.betas = torch.linspace(
            self.beta_start, self.beta_end, self.num_train_timesteps, dtype=torch.float32
        )  # (T,)
        self.alphas = 1.0 - self.betas  # (T,)
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # (T,) ᾱ_t
        # Python copies: a sampling step reads three scalars and should not index tensors.
        self._betas = self.betas.tolist()
        self._alphas = self.alphas.tolist()
        self._alphas_cumprod = self.alphas_cumprod.tolist()

    def alpha_bar(self, timestep: int) -> float:
        """ᾱ_t as a float, with ᾱ_{−1} = 1 (the step that lands on clean data)."""
        self._check_timestep(timestep, allow_minus_one=True)
        return 1.0 if timestep < 0 else self._alphas_cumprod[timestep]

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε  (DDPM eq. 4).

        original_samples, noise: (B, ...) on any device and float dtype.
        timesteps: (B,) integer, each in [0, T); broadcast over the trailing dims.
        Returns x_t with the shape, device and dtype of `original_samples`.
        """
        if timesteps.ndim != 1 or timesteps.shape[0] != original_samples.shape[0]:
            raise ValueError(
                f"timesteps must have shape ({original_samples.shape[0]},), "
                f"got {tuple(timesteps.shape)}"
            )
        device = original_samples.device
        alpha_bar = self.alphas_cumprod.to(device)[timesteps.to(device=device, dtype=torch.long)]
        trailing = (1,) * (original_samples.ndim - 1)
        # Coefficients are formed in float32 and only then cast, so bf16 inputs keep ᾱ_t exact.
        signal = alpha_bar.sqrt().view(-1, *trailing).to(original_samples.dtype)  # (B, 1, ...)
        sigma = (1.0 - alpha_bar).sqrt().view(-1, *trailing).to(original_samples.dtype)
        return signal * original_samples + sigma * noise.to(original_samples.dtype)

    def _check_timestep(self, timestep: int, *, allow_minus_one: bool = False) -> None:
        low = -1 if allow_minus_one else 0
        if not low <= timestep < self.num_train_timesteps:
            raise ValueError(f"timestep {timestep} outside [{low}, {self.num_train_timesteps - 1}]")


def step_noise(sample: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """z ~ N(0, I) shaped like `sample`: drawn in float32 on the generator's device, then moved.

    Drawing in float32 on the generator's own device makes the noise for a seed the same
    whatever the sample's dtype, and lets a CPU generator drive a GPU sample.
    """
    device = generator.device if generator is not None else sample.device
    noise = torch.randn(sample.shape, generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=sample.device, dtype=sample.dtype)
