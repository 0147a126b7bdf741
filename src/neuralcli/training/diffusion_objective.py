"""The latent-diffusion training objective: predict the noise ε added to standardised latents.

DDPM L_simple (Ho et al. 2020, eq. 14) with the loss on ε that LDNS uses per run (LDNS §8):
MSE (Lorenz) or SmoothL1 with β = 0.04 (monkey unconditional, human) / 0.05 (monkey
angle, velocity).

Conditioned batches (`ConditionedLatents`) hand their angle / velocity / mask to the model as
keyword arguments; only the latents are noised. Extra output channels of a model that returns
Cin > d channels are sliced off before the loss; with a mask the per-element loss is multiplied
by it and then averaged over all elements, padding included (LDNS §8, human).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuralcli.data.datasets import ConditionedLatents
from neuralcli.diffusion.schedule import LinearNoiseSchedule
from neuralcli.training.objective import LossOutput

LOSSES = ("mse", "smooth_l1")


@dataclass
class DiffusionLossConfig:
    """Loss on ε and the noise schedule it trains for. Defaults: LDNS Lorenz (LDNS §8)."""

    loss: str = "mse"
    smooth_l1_beta: float = 0.04
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.smooth_l1_beta <= 0:
            raise ValueError("smooth_l1_beta must be positive")
        if self.num_train_timesteps < 1:
            raise ValueError("num_train_timesteps must be at least 1")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError("need 0 < beta_start <= beta_end < 1")


class DiffusionObjective:
    """Objective for an ε-model called as model(x_t (B, T, C), t (B,) int64) -> ε̂ (B, T, C).

    A batch is a float tensor of standardised latents x_0: (B, T, C), or `ConditionedLatents`
    whose conditions are passed on as model(x_t, t, angle=..., velocity=..., mask=...).
    """

    validation_seed = 0

    def __init__(self, *, config: DiffusionLossConfig) -> None:
        self.config = config
        self.schedule = LinearNoiseSchedule(
            num_train_timesteps=config.num_train_timesteps,
            beta_start=config.beta_start,
            beta_end=config.beta_end,
        )

    def training_loss(
        self, model: nn.Module, batch: torch.Tensor | ConditionedLatents
    ) -> LossOutput:
        """t ~ U{0 … T−1} per sequence and ε ~ N(0, I) from torch's global RNG."""
        latents = _latents(batch)  # (B, T, C)
        timesteps = torch.randint(
            0, self.config.num_train_timesteps, (latents.shape[0],), device=latents.device
        )  # (B,)
        noise = torch.randn_like(latents)  # (B, T, C)
        return self._loss(model, batch, timesteps, noise)

    def validation_loss(
        self, model: nn.Module, batch: torch.Tensor | ConditionedLatents
    ) -> LossOutput:
        """Same loss with t and ε from a fresh CPU generator seeded 0 for every batch.

        Every evaluation then sees the same (t, ε) for the same batch, so validation losses
        are comparable across epochs and devices.
        """
        latents = _latents(batch)  # (B, T, C)
        generator = torch.Generator().manual_seed(self.validation_seed)
        timesteps = torch.randint(
            0, self.config.num_train_timesteps, (latents.shape[0],), generator=generator
        )  # (B,)
        noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32)  # (B, T, C)
        return self._loss(
            model,
            batch,
            timesteps.to(latents.device),
            noise.to(device=latents.device, dtype=latents.dtype),
        )

    def _loss(
        self,
        model: nn.Module,
        batch: torch.Tensor | ConditionedLatents,
        timesteps: torch.Tensor,
        noise: torch.Tensor,
    ) -> LossOutput:
        latents = _latents(batch)  # (B, T, C)
        conditions = {} if isinstance(batch, torch.Tensor) else batch.conditions()
        noisy = self.schedule.add_noise(latents, noise, timesteps)  # (B, T, C) x_t, DDPM eq. 4
        # fp32 loss under autocast; LDNS §8: outputs of extra input channels are discarded.
        predicted = model(noisy, timesteps, **conditions).float()[..., : latents.shape[-1]]
        target = noise.float()
        mask = conditions.get("mask")
        if mask is None:
            if self.config.loss == "mse":
                loss = F.mse_loss(predicted, target)
            else:
                loss = F.smooth_l1_loss(predicted, target, beta=self.config.smooth_l1_beta)
        else:
            if self.config.loss == "mse":
                elementwise = F.mse_loss(predicted, target, reduction="none")  # (B, T, C)
            else:
                elementwise = F.smooth_l1_loss(
                    predicted, target, reduction="none", beta=self.config.smooth_l1_beta
                )  # (B, T, C)
            # LDNS §8 (human): per element × mask, then the mean over every element.
            loss = (elementwise * mask.float()[..., None]).mean()
        return LossOutput(loss=loss, metrics={"eps_loss": float(loss.detach())})


def _latents(batch: torch.Tensor | ConditionedLatents) -> torch.Tensor:
    """The latents x_0 (B, T, C) of a plain or conditioned batch."""
    return batch if isinstance(batch, torch.Tensor) else batch.latents
