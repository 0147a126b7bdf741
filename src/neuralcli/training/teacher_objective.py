"""Objective of the spike teacher (distillation §6): masked-token Poisson NLL.

Each step hides round(0.6 · n_valid) random (time, patch) tokens per item [repro]; the
model predicts a log-rate for every channel of every token and the loss is the Poisson NLL
with log-rate link, ℓ = exp(η) − y·η (torch's poisson_nll_loss, log_input=True,
full=False: the log y! term is constant), averaged over the hidden tokens' real entries.
Padded units (beyond an item's unit count, or the pad up to a multiple of S) are never
scored. The exp link is our choice (§6 leaves it open); with it the rate is the head's
output exponentiated, as in NDT-style spike models.

A teacher with `context_steps` > 0 (ours, off by default; models/spike_teacher.py) trains on
one random window of that many time steps per item instead of the whole segment, in training
and in validation (validation crops come from the loop's seeded RNG, so they repeat). Short
windows make a step several times cheaper, so a CPU budget buys many more optimiser steps;
on synthetic-reach the teacher needs about a thousand steps before it uses temporal context
at all (before that it predicts each channel's mean rate, bits/spike below 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcli.data.paired import PairedBatch
from neuralcli.training.masking import random_token_mask, unwrap_model
from neuralcli.training.objective import LossOutput


@dataclass
class TeacherLossConfig:
    mask_ratio: float = 0.6  # [repro] distillation §6

    def __post_init__(self) -> None:
        if isinstance(self.mask_ratio, bool) or not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio!r}")


def map_sessions(session_map: Tensor, session: Tensor) -> Tensor:
    """Dataset session indices (B,) -> the model's vocabulary indices (B,)."""
    return session_map.to(session.device)[session]


class TeacherObjective:
    """Objective for a SpikeTeacher on PairedBatch's spikes.

    session_map (n_dataset_sessions,) int64: dataset session index (batch.session) ->
    the teacher's vocabulary index.
    """

    def __init__(self, *, config: TeacherLossConfig, session_map: Tensor) -> None:
        self.config = config
        self.session_map = session_map.long()

    def training_loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        """Masked loss; the mask (and the windows of a teacher with context_steps) are
        drawn from torch's global RNG."""
        return self._loss(model, batch)

    def validation_loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        """Same loss; the loop seeds torch's RNG for validation, so masks and windows repeat."""
        return self._loss(model, batch)

    @staticmethod
    def _crop(spikes: Tensor, steps: int) -> Tensor:
        """spikes (B, T, U) -> (B, min(T, steps), U), one random start per item; steps 0
        keeps the whole window."""
        batch, length, units = spikes.shape
        if steps == 0 or steps >= length:
            return spikes
        starts = torch.randint(0, length - steps + 1, (batch,))  # (B,) global RNG, CPU
        rows = starts.to(spikes.device)[:, None] + torch.arange(steps, device=spikes.device)
        return spikes.gather(1, rows[:, :, None].expand(-1, -1, units))  # (B, crop, U)

    def _loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        teacher = unwrap_model(model)
        batch = batch._replace(spikes=self._crop(batch.spikes, teacher.config.context_steps))
        targets = teacher.patch_targets(batch.spikes, batch.n_units)
        token_valid = targets.entry_valid.any(dim=-1)  # (B, N)
        mask = random_token_mask(token_valid, token_valid.shape, self.config.mask_ratio)
        out = model(
            batch.spikes, map_sessions(self.session_map, batch.session), batch.n_units, mask
        )
        scored = mask[:, :, None] & targets.entry_valid  # (B, N, S) hidden, real entries
        counts = targets.values  # (B, N, S)
        nll = F.poisson_nll_loss(
            out.log_rates.float(), counts, log_input=True, full=False, reduction="none"
        )  # (B, N, S)
        n_scored = scored.sum()
        loss = nll.masked_fill(~scored, 0.0).sum() / n_scored.clamp_min(1)
        n_steps = batch.spikes.shape[1]
        return LossOutput(
            loss=loss,
            metrics={
                "poisson_nll": float(loss.detach()),
                "bits_per_spike": bits_per_spike(nll.detach(), counts, scored, n_steps),
                "masked_fraction": float(mask.sum() / token_valid.sum().clamp_min(1)),
            },
        )


def bits_per_spike(nll: Tensor, counts: Tensor, scored: Tensor, n_steps: int) -> float:
    """Information gain of the model over a per-channel mean-rate model, in bits per spike.

    nll, counts, scored (B, T*P, S). The null rate of a channel is its item's mean count
    over the window's T steps (all steps, hidden or not), as in NLB's bits/spike; both
    NLLs omit log y!, which cancels. 0 when the scored entries hold no spike.
    """
    batch, length, size = counts.shape
    grouped = counts.view(batch, n_steps, length // n_steps, size)  # (B, T, P, S)
    null_rate = grouped.mean(dim=1, keepdim=True).expand_as(grouped).reshape_as(counts)
    null_rate = null_rate.clamp_min(1e-9)  # silent channels: r − y·log r stays finite
    null_nll = null_rate - counts * torch.log(null_rate)  # (B, T*P, S)
    spikes = counts[scored].sum()
    if float(spikes) == 0.0:
        return 0.0
    gain = (null_nll[scored] - nll[scored]).sum()
    return float(gain / (spikes * math.log(2.0)))
