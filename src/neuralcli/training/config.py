"""Settings of the one training loop shared by every model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainingConfig:
    """Optimiser, schedule and bookkeeping. Defaults: the LDNS Lorenz AE (specs/ldns.md §12).

    Schedule: linear warm-up from 0 over `warmup_epochs` epochs, then the factor
    max(0, ½(1 + cos(π·progress))) with horizon `epochs · lr_horizon_factor` epochs.
    """

    epochs: int = 200
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: int = 10
    lr_horizon_factor: float = 1.3
    grad_clip: float = 2.0
    ema: bool = False
    ema_max_decay: float = 0.9999
    ema_min_decay: float = 0.0
    val_every_epochs: int = 5
    checkpoint_every_steps: int = 500
    log_every_steps: int = 10
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("training.epochs must be at least 1")
        if self.batch_size < 1:
            raise ValueError("training.batch_size must be at least 1")
        if self.lr <= 0:
            raise ValueError("training.lr must be positive")
        if self.warmup_epochs < 0:
            raise ValueError("training.warmup_epochs must be >= 0")
        if self.lr_horizon_factor <= 0:
            raise ValueError("training.lr_horizon_factor must be positive")
        if self.checkpoint_every_steps < 1:
            raise ValueError("training.checkpoint_every_steps must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("training.max_steps must be at least 1 (or null)")
