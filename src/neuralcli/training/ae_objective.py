"""The autoencoder objective of LDNS §4: masked Poisson NLL plus latent regularisers.

Training (coordinated-dropout style): each count is dropped with probability p, the kept
counts are scaled by 1/(1−p), and the full Poisson NLL is scored on the dropped entries
only, averaged over all entries. The L2 and temporal-difference penalties on the latents are
divided by the number of input elements. Validation scores the unmasked input, × p.

Training's hot path avoids the plain composition's dozen (B, T, N) temporaries: the drop
mask comes from 32-bit integer draws (`drop_mask`), and the scored NLL is one autograd
function (`scored_poisson_nll`) whose backward is a single expression of its inputs. Tests
check both against the plain composition.

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
    stirling = _stirling(counts.clamp(min=1.0))  # used only where x > 1; clamped: no log(0)
    return nll + torch.where(counts > 1, stirling, torch.zeros_like(stirling))


def _stirling(counts: torch.Tensor) -> torch.Tensor:
    """x·log x − x + ½·log(2πx), elementwise, for counts x ≥ 1: the "full" NLL term."""
    return (counts + 0.5) * torch.log(counts) - counts + _HALF_LOG_TWO_PI


def drop_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
    """Float mask (1 = dropped) with each entry dropped with probability p, independently.

    Draws are uniform 32-bit integers from torch's global generator (the two halves of
    uniform int64 draws), and an entry is dropped when its draw is among the lowest
    round(p·2^32) values: the probability is p to within 2^-33 (float32 `torch.rand() < p`
    resolves p to 2^-24). On CPU the draws take 7.9 ms for an MC_Maze batch (64 × 140 × 182,
    2 threads), `torch.rand` 11.1 ms.
    """
    numel = math.prod(shape)
    count = (numel + 1) // 2
    pairs = torch.randint(-(2**63), 2**63 - 1, (count,), dtype=torch.int64, device=device)
    draws = pairs.view(torch.int32)[:numel].view(shape)  # uniform over int32
    threshold = min(round(p * 2**32) - 2**31, 2**31 - 1)  # dropped iff draw < threshold
    return torch.lt(draws, threshold).to(torch.float32)


class _ScoredPoissonNLL(torch.autograd.Function):
    """Σ scored·ℓ(r, x) of `poisson_nll`, with dℓ/dr = 1 − x/(r + 1e-8); scored is 0/1."""

    @staticmethod
    def forward(ctx, rates, counts, scored):  # noqa: ANN001, ANN205
        log_rates = torch.log(rates + 1e-8)
        nll = torch.addcmul(rates, counts, log_rates, value=-1.0, out=log_rates)  # r − x·log r
        total = torch.dot(nll.reshape(-1), scored.reshape(-1))
        # Stirling terms where x > 1: few entries, gathered.
        where_big = (counts > 1).reshape(-1).nonzero().squeeze(1)
        large = counts.reshape(-1).index_select(0, where_big)
        weight = scored.reshape(-1).index_select(0, where_big)
        ctx.save_for_backward(rates, counts, scored)
        return total + torch.dot(_stirling(large), weight)

    @staticmethod
    def backward(ctx, grad_total):  # noqa: ANN001, ANN205
        rates, counts, scored = ctx.saved_tensors
        grad = torch.div(counts, rates + 1e-8)  # x / (r + 1e-8)
        grad.sub_(1.0).mul_(scored).mul_(-grad_total)  # scored·(1 − x/(r + 1e-8))·g
        return grad, None, None


def scored_poisson_nll(
    rates: torch.Tensor, counts: torch.Tensor, scored: torch.Tensor
) -> torch.Tensor:
    """Σ over entries of scored·poisson_nll(rates, counts): a 0-d tensor, float32.

    rates, counts, scored (B, T, N) float32; scored is 1 where the entry counts, else 0.
    Gradients flow to rates only.
    """
    return _ScoredPoissonNLL.apply(rates, counts, scored.to(rates.dtype))


class AutoencoderObjective:
    """Objective for a model called as model(spikes (B, T, N)) -> (rates, latents).

    A batch is a float tensor of spike counts (B, T, N), or `MaskedSpikes` (spikes (B, T, N),
    mask (B, T) bool) for right-padded variable-length trials.
    """

    def __init__(self, *, config: AutoencoderLossConfig) -> None:
        self.config = config

    def training_loss(self, model: nn.Module, batch: torch.Tensor | MaskedSpikes) -> LossOutput:
        """Masked loss; the drop mask comes from torch's global RNG (`drop_mask`)."""
        spikes, valid = _unpack(batch)  # (B, T, N), (B, T, 1) bool or None
        p = self.config.mask_prob
        dropped = drop_mask(spikes.shape, p, spikes.device)  # (B, T, N) 1 = dropped, LDNS §4
        keep_scale = torch.sub(1.0, dropped).mul_(1.0 / (1.0 - p))  # kept: 1/(1−p), else 0
        if valid is not None:
            keep_scale.mul_(valid)  # padding enters as zeros
            dropped.mul_(valid)  # and is never scored
        masked_input = spikes * keep_scale  # (B, T, N)
        del keep_scale
        rates, latents = model(masked_input)
        rates = rates.float()  # loss in fp32 under autocast
        # Loss only on dropped entries, averaged over all entries (LDNS §4, pitfall 4).
        poisson = scored_poisson_nll(rates, spikes.float(), dropped) / spikes.numel()
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
