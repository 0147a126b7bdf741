"""DDIM sampler (Song, Meng & Ermon 2021) on the LDNS training schedule: our few-step addition.

LDNS itself samples with 1000 DDPM steps (LDNS §8). DDIM reuses the same ε-model and
schedule with S ≪ T steps; with η = 0 the update is deterministic (the probability-flow
ODE discretisation), with η = 1 it is DDPM-like ancestral sampling on the sub-sequence.

Timestep spacing is "trailing" (Lin et al. 2024, "Common Diffusion Noise Schedules and
Sample Steps are Flawed", Table 2): t_k = round(T − k·T/S) − 1 for k = 0 … S−1, so the
first step is always t = T − 1 (where z_T ~ N(0, I) is the right starting point) and the
last one lands on clean data via ᾱ_{−1} = 1. "Leading" spacing would start at
T − T/S instead (t = 900 for S = 10), a noise level z_T ~ N(0, I) does not match.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neuralcli.diffusion.schedule import LinearNoiseSchedule, SchedulerStep, step_noise
from neuralcli.errors import ConfigError


class DDIMScheduler(LinearNoiseSchedule):
    """Stateless: `set_timesteps` returns the timesteps, `step` is a pure function of its inputs.

    The constructor is `LinearNoiseSchedule`'s: `num_train_timesteps`, `beta_start`, `beta_end`.
    """

    default_inference_steps = 50

    def set_timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """S trailing timesteps, descending: (S,) int64 starting at T − 1. None means 50."""
        steps = self.default_inference_steps if num_inference_steps is None else num_inference_steps
        if int(steps) != steps or not 1 <= steps <= self.num_train_timesteps:
            raise ConfigError(
                f"num_inference_steps={num_inference_steps!r}: the DDIM sampler needs an integer "
                f"in [1, {self.num_train_timesteps}], e.g. 50"
            )
        total, steps = self.num_train_timesteps, int(steps)
        timesteps = np.round(total - np.arange(steps) * (total / steps)) - 1  # t_k, k = 0 … S−1
        return torch.from_numpy(timesteps.astype(np.int64))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        prev_timestep: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> SchedulerStep:
        """One DDIM step x_t → x_{t_prev} (DDIM eq. 12; the paper's α is our ᾱ).

        model_output: ε̂ (B, ...); sample: x_t (B, ...), same shape, any device/dtype.
        prev_timestep: the next (smaller) timestep of the sequence from `set_timesteps`, or −1
            after the last one; None means `timestep − 1`.
        eta: η of DDIM eq. 16; 0 is deterministic, 1 matches the DDPM posterior variance.
        generator: source of the step noise when η > 0 (float32 on the generator's device).
        """
        t = int(timestep)
        prev = t - 1 if prev_timestep is None else int(prev_timestep)
        self._check_timestep(t)
        if not -1 <= prev < t:
            raise ValueError(f"prev_timestep must be in [-1, {t - 1}], got {prev}")
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        alpha_bar_t = self.alpha_bar(t)
        alpha_bar_prev = self.alpha_bar(prev)

        # "predicted x_0" term of DDIM eq. 12.
        pred_original = (sample - math.sqrt(1.0 - alpha_bar_t) * model_output) / math.sqrt(
            alpha_bar_t
        )  # (B, ...)
        # DDIM eq. 16: σ_t(η) = η·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev).
        variance = (
            eta**2
            * (1.0 - alpha_bar_prev)
            / (1.0 - alpha_bar_t)
            * (1.0 - alpha_bar_t / alpha_bar_prev)
        )
        # DDIM eq. 12: √ᾱ_prev·x̂_0 + √(1 − ᾱ_prev − σ²)·ε̂ ("direction pointing to x_t") + σ·z.
        direction = math.sqrt(max(1.0 - alpha_bar_prev - variance, 0.0))
        prev_sample = math.sqrt(alpha_bar_prev) * pred_original + direction * model_output
        if variance > 0.0:
            prev_sample = prev_sample + math.sqrt(variance) * step_noise(sample, generator)
        return SchedulerStep(prev_sample=prev_sample, pred_original_sample=pred_original)
