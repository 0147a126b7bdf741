"""The spike-history GLM objective of LDNS §5, and the data source it trains on.

Teacher forcing: the GLM sees the true spikes (clipped at max_count) and the log rates of
the frozen AE on the same trials, and is scored by the full Poisson NLL (rate input) of the
clipped spikes at every (trial, t ≥ history_bins, neuron), averaged over all of them. The
published recipe is full-batch AdamW (lr 0.1, weight decay 0.01) for 3000 epochs: through
the one training loop that is `batch_size >= n_trials` (one step per epoch).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from neuralcli.training.objective import LossOutput


class SpikeHistoryBatch(NamedTuple):
    spikes: torch.Tensor  # (B, T, N) float32 counts
    log_rates: torch.Tensor  # (B, T, N) float32 log of the rate model's rates


class SpikeHistorySource:
    """Spike counts and log rates of the same trials; batches are `SpikeHistoryBatch`.

    spikes: (n, T, N) integer counts; log_rates: (n, T, N) float. Both are kept as float32
    on `device` (for full-batch training on a GPU this avoids copying the whole training
    set to the device at every step; the loop's move to the device is then a no-op).
    """

    def __init__(
        self,
        spikes: np.ndarray | torch.Tensor,
        log_rates: np.ndarray | torch.Tensor,
        *,
        device: torch.device | str = "cpu",
    ) -> None:
        spikes = torch.as_tensor(spikes)
        log_rates = torch.as_tensor(log_rates)
        if spikes.ndim != 3 or spikes.shape != log_rates.shape:
            raise ValueError(
                f"spikes {tuple(spikes.shape)} and log_rates {tuple(log_rates.shape)} must both "
                "be (trials, time, neurons) of the same shape"
            )
        if spikes.is_floating_point() or spikes.is_complex() or spikes.dtype == torch.bool:
            raise ValueError(f"spikes must hold integer counts, got dtype {spikes.dtype}")
        self.spikes = spikes.to(device=device, dtype=torch.float32)
        self.log_rates = log_rates.to(device=device, dtype=torch.float32)

    def __len__(self) -> int:
        return self.spikes.shape[0]

    def batch(self, indices: torch.Tensor) -> SpikeHistoryBatch:
        """The trials at `indices` (int64): SpikeHistoryBatch of (B, T, N) float32."""
        index = torch.as_tensor(indices, dtype=torch.int64).to(self.spikes.device)
        return SpikeHistoryBatch(
            self.spikes.index_select(0, index), self.log_rates.index_select(0, index)
        )


def full_poisson_nll(rates: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean full Poisson NLL on rates: torch `poisson_nll_loss(log_input=False, full=True)`.

    ℓ(r, x) = r − x·log(r + 1e-8) + [x > 1]·(x·log x − x + ½·log(2πx)). The Stirling term only
    exists where x > 1, a small share of the bins of spike counts, so it is summed over those
    entries alone instead of being evaluated densely (it dominated a full-batch step on CPU).
    rates, counts: same shape -> scalar.
    """
    nll = rates - counts * torch.log(rates + 1e-8)
    large = counts[counts > 1]  # (K,)
    stirling = large * torch.log(large) - large + 0.5 * torch.log(2.0 * math.pi * large)
    return (nll.sum() + stirling.sum()) / counts.numel()


class SpikeHistoryObjective:
    """Objective for a model called as model(spikes, log_rates) -> rates (B, T − H, N)."""

    def __init__(self, *, history_bins: int, max_count: int) -> None:
        self.history_bins = history_bins
        self.max_count = max_count

    def _loss(self, model: nn.Module, batch: SpikeHistoryBatch) -> LossOutput:
        rates = model(batch.spikes, batch.log_rates).float()  # (B, T − H, N)
        target = batch.spikes[:, self.history_bins :].clamp(max=self.max_count)  # (B, T − H, N)
        # LDNS §5: Poisson NLL, full, rate input, mean over all (trial, t ≥ H, neuron).
        loss = full_poisson_nll(rates, target)
        return LossOutput(loss=loss, metrics={"mean_rate": float(rates.detach().mean())})

    def training_loss(self, model: nn.Module, batch: SpikeHistoryBatch) -> LossOutput:
        return self._loss(model, batch)

    def validation_loss(self, model: nn.Module, batch: SpikeHistoryBatch) -> LossOutput:
        return self._loss(model, batch)
