"""The autoencoder objective of LDNS §4: masked Poisson NLL plus latent regularisers.

Training (coordinated-dropout style): each count is dropped with probability p, the kept
counts are scaled by 1/(1−p), and the full Poisson NLL is scored on the dropped entries
only, averaged over all entries. The L2 and temporal-difference penalties on the latents are
divided by the number of input elements. Validation scores the unmasked input, × p.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from neuralcli.training.objective import LossOutput

_HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


@dataclass
class AutoencoderLossConfig:
    """Masking and regulariser weights. Defaults: LDNS Lorenz (LDNS §4 table)."""

    mask_prob: float = 0.2
    latent_beta: float = 0.01
    latent_td_beta: float = 0.01
    td_k: int = 5

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in [0, 1), got {self.mask_prob}")
        if self.latent_beta < 0:
            raise ValueError(f"latent_beta must be >= 0, got {self.latent_beta}")
        if self.latent_td_beta < 0:
            raise ValueError(f"latent_td_beta must be >= 0, got {self.latent_td_beta}")
        if isinstance(self.td_k, bool) or not isinstance(self.td_k, int) or self.td_k < 0:
            raise ValueError(f"td_k must be a non-negative integer, got {self.td_k!r}")


def poisson_nll(rates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Elementwise full Poisson NLL on rates (not log-rates), same shape as the inputs.

    ℓ(r, x) = r − x·log(r + 1e-8) + [x > 1]·(x·log x − x + ½·log(2πx))  (LDNS §4; the
    Stirling term is that of torch's poisson_nll_loss(log_input=False, full=True)).
    """
    nll = rates - counts * torch.log(rates + 1e-8)
    safe = counts.clamp(min=1.0)  # the term is only used where x > 1; avoids log(0)
    stirling = (safe + 0.5) * torch.log(safe) - safe + _HALF_LOG_TWO_PI
    return nll + torch.where(counts > 1, stirling, torch.zeros_like(stirling))


class AutoencoderObjective:
    """Objective for a model called as model(spikes (B, T, N)) -> (rates, latents).

    A batch is a float tensor of spike counts (B, T, N).
    """

    def __init__(self, *, config: AutoencoderLossConfig) -> None:
        self.config = config

    def training_loss(self, model: nn.Module, batch: torch.Tensor) -> LossOutput:
        """Masked loss; the keep-mask is drawn from torch's global RNG."""
        p = self.config.mask_prob
        keep = torch.rand(batch.shape, device=batch.device) > p  # (B, T, N) LDNS §4
        masked_input = batch * keep / (1.0 - p)  # (B, T, N)
        rates, latents = model(masked_input)
        rates = rates.float()  # loss in fp32 under autocast
        nll = poisson_nll(rates, batch)  # (B, T, N)
        # Loss only on dropped entries, averaged over all entries (LDNS §4, pitfall 4).
        poisson = nll.masked_fill(keep, 0.0).sum() / batch.numel()
        return self._with_regularisers(poisson, latents.float(), batch.numel())

    def validation_loss(self, model: nn.Module, batch: torch.Tensor) -> LossOutput:
        """Unmasked input; mean NLL over all entries × p for comparability (LDNS §4)."""
        rates, latents = model(batch)
        poisson = poisson_nll(rates.float(), batch).mean() * self.config.mask_prob
        return self._with_regularisers(poisson, latents.float(), batch.numel())

    def _with_regularisers(
        self, poisson: torch.Tensor, latents: torch.Tensor, numel: int
    ) -> LossOutput:
        """latents (B, T, d); both penalties are divided by the INPUT's numel (LDNS §4)."""
        l2 = latents.square().sum()
        td = latents.new_zeros(())
        for i in range(1, self.config.td_k + 1):
            diff = latents[:, :-i] - latents[:, i:]  # (B, T−i, d)
            td = td + diff.square().sum() / (1.0 + i)
        latent_l2 = l2 / numel
        latent_td = td / numel
        loss = (
            poisson + self.config.latent_beta * latent_l2 + self.config.latent_td_beta * latent_td
        )
        return LossOutput(
            loss=loss,
            metrics={
                "poisson": float(poisson.detach()),
                "latent_l2": float(latent_l2.detach()),
                "latent_td": float(latent_td.detach()),
            },
        )
