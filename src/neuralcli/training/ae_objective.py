"""The autoencoder objective of LDNS §4: masked Poisson NLL plus latent regularisers.

Training (coordinated-dropout style): each count is dropped with probability p, the kept
counts are scaled by 1/(1−p), and the full Poisson NLL is scored on the dropped entries
only, averaged over all entries. The L2 and temporal-difference penalties on the latents are
divided by the number of input elements. Validation scores the unmasked input, × p.

Variable-length trials (human data) come as `MaskedSpikes(spikes, mask)`: padded bins enter
the model as zeros and count in no term: the Poisson NLL, the latent L2 and the temporal
differences (pairs with both bins real) sum over real bins only (LDNS §4: "human data also
multiplies by the padding mask"). Every term keeps the reference's denominator, the number of
input elements B·T·N including padding, so each real bin weighs the same in every batch and an
all-valid mask gives exactly the unmasked loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from neuralcli.data.masked_datasets import MaskedSpikes
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

    A batch is a float tensor of spike counts (B, T, N), or `MaskedSpikes` (spikes (B, T, N),
    mask (B, T) bool) for right-padded variable-length trials.
    """

    def __init__(self, *, config: AutoencoderLossConfig) -> None:
        self.config = config

    def training_loss(self, model: nn.Module, batch: torch.Tensor | MaskedSpikes) -> LossOutput:
        """Masked loss; the keep-mask is drawn from torch's global RNG."""
        spikes, valid = _unpack(batch)  # (B, T, N), (B, T, 1) bool or None
        p = self.config.mask_prob
        keep = torch.rand(spikes.shape, device=spikes.device) > p  # (B, T, N) LDNS §4
        masked_input = spikes * keep / (1.0 - p)  # (B, T, N)
        if valid is not None:
            masked_input = torch.where(valid, masked_input, 0.0)  # padding enters as zeros
        rates, latents = model(masked_input)
        rates = rates.float()  # loss in fp32 under autocast
        nll = poisson_nll(rates, spikes)  # (B, T, N)
        # Loss only on dropped entries, averaged over all entries (LDNS §4, pitfall 4).
        unscored = keep if valid is None else keep | ~valid  # (B, T, N)
        poisson = nll.masked_fill(unscored, 0.0).sum() / spikes.numel()
        return self._with_regularisers(poisson, latents.float(), spikes.numel(), valid)

    def validation_loss(self, model: nn.Module, batch: torch.Tensor | MaskedSpikes) -> LossOutput:
        """Unmasked input; mean NLL over all entries × p for comparability (LDNS §4)."""
        spikes, valid = _unpack(batch)
        if valid is None:
            rates, latents = model(spikes)
            poisson = poisson_nll(rates.float(), spikes).mean() * self.config.mask_prob
        else:
            rates, latents = model(torch.where(valid, spikes, 0.0))
            nll = poisson_nll(rates.float(), spikes).masked_fill(~valid, 0.0)  # (B, T, N)
            poisson = nll.sum() / spikes.numel() * self.config.mask_prob
        return self._with_regularisers(poisson, latents.float(), spikes.numel(), valid)

    def _with_regularisers(
        self,
        poisson: torch.Tensor,
        latents: torch.Tensor,
        numel: int,
        valid: torch.Tensor | None = None,
    ) -> LossOutput:
        """latents (B, T, d); both penalties are divided by the INPUT's numel (LDNS §4).

        valid (B, T, 1) bool or None: with it, only real bins (and pairs of real bins) count.
        """
        if valid is None:
            l2 = latents.square().sum()
        else:
            weight = valid.to(latents.dtype)  # (B, T, 1)
            l2 = (latents.square() * weight).sum()
        td = latents.new_zeros(())
        for i in range(1, self.config.td_k + 1):
            diff = latents[:, :-i] - latents[:, i:]  # (B, T−i, d)
            if valid is None:
                td = td + diff.square().sum() / (1.0 + i)
            else:
                pair = weight[:, :-i] * weight[:, i:]  # (B, T−i, 1) both bins real
                td = td + (diff.square() * pair).sum() / (1.0 + i)
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


def _unpack(batch: torch.Tensor | MaskedSpikes) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(spikes (B, T, N), valid (B, T, 1) bool) of a masked batch; (batch, None) otherwise."""
    if isinstance(batch, MaskedSpikes):
        spikes, mask = batch
        if tuple(mask.shape) != tuple(spikes.shape[:2]):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not match spikes {tuple(spikes.shape)}"
            )
        return spikes, mask.bool().unsqueeze(-1)
    return batch, None
