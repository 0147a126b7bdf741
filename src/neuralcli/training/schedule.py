"""Learning-rate schedule: linear warm-up from 0, then a half cosine over a horizon
longer than the run, so the rate never reaches 0 (specs/ldns.md §12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class ScheduleSteps:
    """Step counts of one run, all in optimizer steps (per process)."""

    steps_per_epoch: int
    warmup_steps: int
    horizon_steps: float
    total_steps: int


def steps_per_epoch(n_train: int, *, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch: the last partial batch is kept.

    Under DDP each process gets `n_train // world_size` items (the tail that does not
    divide evenly is dropped so every rank runs the same number of steps); with one
    process this is ceil(n_train / batch_size), as in the LDNS loaders.
    """
    per_rank = n_train // world_size
    if per_rank < 1:
        raise ValueError(f"{n_train} training items cannot be split across {world_size} processes")
    return math.ceil(per_rank / batch_size)


def schedule_steps(
    n_train: int,
    *,
    batch_size: int,
    world_size: int,
    epochs: int,
    warmup_epochs: int,
    lr_horizon_factor: float,
    max_steps: int | None = None,
) -> ScheduleSteps:
    """Warm-up, horizon and total steps of a run (LDNS §12: nb·warmup_epochs, nb·epochs·f).

    `max_steps` caps the run but not the schedule: a capped run follows the same LR curve
    as the full one and stops early.
    """
    per_epoch = steps_per_epoch(n_train, batch_size=batch_size, world_size=world_size)
    total = per_epoch * epochs
    if max_steps is not None:
        total = min(total, max_steps)
    return ScheduleSteps(
        steps_per_epoch=per_epoch,
        warmup_steps=per_epoch * warmup_epochs,
        horizon_steps=per_epoch * epochs * lr_horizon_factor,
        total_steps=total,
    )


def warmup_cosine_factor(step: int, *, warmup_steps: int, horizon_steps: float) -> float:
    """LR multiplier at optimizer step `step` (0-based: the factor of the first step is 0).

    Linear warm-up step/warmup_steps, then max(0, ½(1 + cos(π·progress))) with
    progress = (step − warmup_steps)/(horizon_steps − warmup_steps)  (LDNS §12).
    Progress is held at 1 past the horizon so the factor stays 0 instead of rising again
    (it only matters for lr_horizon_factor < 1; LDNS always uses f > 1).
    """
    if step < warmup_steps:
        return step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1.0, horizon_steps - warmup_steps))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


class _WarmupCosine:
    """Picklable lambda for LambdaLR (a closure would not survive torch.save of the scheduler)."""

    def __init__(self, warmup_steps: int, horizon_steps: float) -> None:
        self.warmup_steps = warmup_steps
        self.horizon_steps = horizon_steps

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(
            step, warmup_steps=self.warmup_steps, horizon_steps=self.horizon_steps
        )


def build_warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, horizon_steps: float
) -> LambdaLR:
    """LambdaLR applying `warmup_cosine_factor` to every param group's base lr.

    Call `scheduler.step()` once after each optimizer step.
    """
    return LambdaLR(optimizer, _WarmupCosine(warmup_steps, horizon_steps))
