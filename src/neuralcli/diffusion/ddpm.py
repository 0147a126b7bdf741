"""DDPM ancestral sampler (Ho et al. 2020), exactly as LDNS samples (LDNS §8).

ε-prediction, no clipping of x̂_0, "fixed_small" variance β̃_t clamped at 1e-20, and all
T = 1000 steps t = 999 … 0 with no noise added on the last one.
"""

from __future__ import annotations

import math

import torch

from neuralcli.diffusion.schedule import LinearNoiseSchedule, SchedulerStep, step_noise
from neuralcli.errors import ConfigError


class DDPMScheduler(LinearNoiseSchedule):
    """Stateless: `set_timesteps` returns the timesteps, `step` is a pure function of its inputs.

    The constructor is `LinearNoiseSchedule`'s: `num_train_timesteps`, `beta_start`, `beta_end`.
    """

    def set_timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """All training timesteps, descending: (T,) int64 = [T−1, …, 0].

        DDPM is only defined on consecutive steps, so `num_inference_steps` may be None or T.
        """
        if num_inference_steps is not None and num_inference_steps != self.num_train_timesteps:
            raise ConfigError(
                f"num_inference_steps={num_inference_steps}: the DDPM sampler always takes all "
                f"{self.num_train_timesteps} steps; use the ddim sampler for fewer steps"
            )
        return torch.arange(self.num_train_timesteps - 1, -1, -1, dtype=torch.int64)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        prev_timestep: int | None = None,
        generator: torch.Generator | None = None,
    ) -> SchedulerStep:
        """One ancestral step x_t → x_{t−1}.

        model_output: ε̂ (B, ...); sample: x_t (B, ...), same shape, any device/dtype.
        prev_timestep: accepted so that DDPM and DDIM share one call signature; it must be
            None or `timestep − 1`.
        generator: source of the step noise z (float32 on the generator's device).
        """
        t = int(timestep)
        self._check_timestep(t)
        if prev_timestep is not None and int(prev_timestep) != t - 1:
            raise ValueError(
                f"DDPM steps go from t to t - 1; got timestep {t}, prev_timestep {prev_timestep}"
            )
        alpha_bar_t = self.alpha_bar(t)
        alpha_bar_prev = self.alpha_bar(t - 1)
        beta_t = self._betas[t]
        alpha_t = self._alphas[t]

        # DDPM eq. 15 rearranged: x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, not clipped (LDNS §8).
        pred_original = (sample - math.sqrt(1.0 - alpha_bar_t) * model_output) / math.sqrt(
            alpha_bar_t
        )  # (B, ...)
        # Posterior mean μ̃_t(x_t, x̂_0), DDPM eq. 7.
        coef_original = math.sqrt(alpha_bar_prev) * beta_t / (1.0 - alpha_bar_t)
        coef_current = math.sqrt(alpha_t) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
        prev_sample = coef_original * pred_original + coef_current * sample  # (B, ...)
        if t > 0:
            # "fixed_small": σ_t² = β̃_t = β_t(1 − ᾱ_{t−1})/(1 − ᾱ_t), DDPM eq. 7 / §3.2.
            variance = max(beta_t * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t), 1e-20)
            prev_sample = prev_sample + math.sqrt(variance) * step_noise(sample, generator)
        return SchedulerStep(prev_sample=prev_sample, pred_original_sample=pred_original)
