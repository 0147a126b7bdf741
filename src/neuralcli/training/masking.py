"""Random token masks for the masked objectives of the distillation models.

A mask is (B, N) bool over the tokens of a batch, True = hidden. Each item hides exactly
round(ratio · n_valid) of its own valid tokens (so items with fewer channels are not masked
more heavily), never all of them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def random_token_mask(
    valid: Tensor | None,
    shape: tuple[int, int] | torch.Size,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """(B, N) bool mask, True = hidden, drawn from torch's RNG (or `generator`).

    valid (B, N) bool marks the tokens that may be hidden (None = all); item i hides
    exactly round(ratio · n_valid_i) of its valid tokens (round half to even), at least one
    when ratio > 0, and keeps at least one visible. `device` is used when valid is None.
    """
    if isinstance(ratio, bool) or not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio!r}")
    batch, length = (int(size) for size in shape)
    if valid is not None:
        if tuple(valid.shape) != (batch, length):
            raise ValueError(f"valid has shape {tuple(valid.shape)}, expected {(batch, length)}")
        device = valid.device
        n_valid = valid.sum(dim=1)  # (B,)
    else:
        n_valid = torch.full((batch,), length, dtype=torch.long, device=device)  # (B,)
    hidden = torch.round(n_valid.double() * ratio).long()  # (B,)
    if ratio > 0:
        hidden = hidden.clamp_min(1)
    hidden = torch.minimum(hidden, (n_valid - 1).clamp_min(0))
    scores = torch.rand((batch, length), generator=generator, device=device)  # (B, N)
    if valid is not None:
        scores = scores.masked_fill(~valid, 2.0)  # invalid tokens rank after every valid one
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, N) rank of each token's score
    return rank < hidden[:, None]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DDP (`.module`) and torch.compile wrappers.

    Objectives call the wrapper for forward passes (it synchronises gradients) and the
    unwrapped model only for its config and parameter-free helpers such as patch_targets.
    """
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
