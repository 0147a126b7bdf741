"""The contract between the training loop and a model: an objective computes a loss.

The loop owns optimisation, precision, EMA, checkpoints and progress; an objective only
says how a batch becomes a scalar loss (and a few metrics to log).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from torch import nn


class LossOutput(NamedTuple):
    loss: torch.Tensor  # scalar, differentiable in training
    metrics: dict[str, float]  # already-detached numbers to log


class Objective(Protocol):
    def training_loss(self, model: nn.Module, batch: Any) -> LossOutput:
        """Loss of one training batch (may draw random masks/noise from torch's global RNG)."""

    def validation_loss(self, model: nn.Module, batch: Any) -> LossOutput:
        """Deterministic loss of one validation batch (called under torch.no_grad)."""


class BatchSource(Protocol):
    """In-memory data indexed in batches (no per-item collate)."""

    def __len__(self) -> int: ...

    def batch(self, indices: torch.Tensor) -> Any:
        """The items at `indices` (int64, CPU) as one batch: a tensor or a NamedTuple of tensors."""
