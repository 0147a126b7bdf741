"""Exponential moving average of a model's weights, diffusers 0.3.0 semantics (specs/ldns.md §8).

The shadow copy is float32 whatever the model's dtype; trainable parameters are averaged,
frozen parameters and buffers are copied (as diffusers 0.3.0 does).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def ema_decay(optimizer_step: int, *, min_decay: float = 0.0, max_decay: float = 0.9999) -> float:
    """Decay of the EMA update that follows optimizer step number `optimizer_step` (0-based).

    `optimizer_step` counts the optimizer steps taken before the one just applied, as the
    `optimization_step` counter of diffusers 0.3.0 does: with s = optimizer_step − 1,
    decay = 0 if s ≤ 0 else clip(1 − (1 + s)^(−2/3), min_decay, max_decay)  (LDNS §8).
    The first two updates therefore copy the weights, whatever `min_decay` is.
    """
    s = optimizer_step - 1
    if s <= 0:
        return 0.0
    return min(max(1.0 - (1.0 + s) ** (-2.0 / 3.0), min_decay), max_decay)


class EMA:
    """Float32 shadow of a module's parameters and buffers.

    Build it from the unwrapped module (not a DDP or torch.compile wrapper) once its
    weights are those of step 0; names are the module's `state_dict` names.
    """

    def __init__(self, module: nn.Module, *, min_decay: float = 0.0, max_decay: float = 0.9999):
        if not 0.0 <= min_decay <= max_decay < 1.0:
            raise ValueError(
                f"EMA decays must satisfy 0 <= min <= max < 1, got {min_decay}, {max_decay}"
            )
        self.min_decay = min_decay
        self.max_decay = max_decay
        self.decay = 0.0  # of the latest update, for logging
        live = _live_tensors(module)
        with torch.no_grad():
            self.shadow: dict[str, torch.Tensor] = {
                name: _shadow_like(t) for name, t in live.items()
            }
        self.averaged_names = _averaged_names(module)
        averaged = set(self.averaged_names)
        self.copied_names = [name for name in live if name not in averaged]
        self._averaged = [self.shadow[name] for name in self.averaged_names]
        self._copied = [self.shadow[name] for name in self.copied_names]
        self._cached_module: nn.Module | None = None
        self._cached_live: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])

    @torch.no_grad()
    def update(self, module: nn.Module, optimizer_step: int) -> None:
        """ema ← decay·ema + (1 − decay)·θ for trainable parameters; copy the rest.

        `optimizer_step`: optimizer steps taken before the one this update follows
        (0 on the first call); see `ema_decay`.
        """
        averaged_live, copied_live = self._live_lists(module)
        decay = ema_decay(optimizer_step, min_decay=self.min_decay, max_decay=self.max_decay)
        self.decay = decay
        if self._averaged:
            if decay == 0.0:
                torch._foreach_copy_(self._averaged, averaged_live)
            else:
                # lerp(ema, θ, 1 − decay) = decay·ema + (1 − decay)·θ  (LDNS §8)
                torch._foreach_lerp_(self._averaged, averaged_live, 1.0 - decay)
        if self._copied:
            torch._foreach_copy_(self._copied, copied_live)

    def _live_lists(self, module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        # Training updates a module's tensors in place, so their lookup by name is done
        # once per module, not once per step. The cache holds the Parameter objects, not
        # detached views, so it stays valid when `.to()` swaps a parameter's storage.
        if module is not self._cached_module:
            live = _live_tensors(module)
            missing = [name for name in self.shadow if name not in live]
            if missing:
                raise ValueError(
                    f"module lacks EMA entries {missing[:3]}; pass the unwrapped model"
                )
            self._cached_module = module
            self._cached_live = (
                [live[name] for name in self.averaged_names],
                [live[name] for name in self.copied_names],
            )
        averaged, copied = self._cached_live
        if any(t.dtype != torch.float32 for t in averaged):
            # lerp needs matching dtypes: a half-precision model is averaged in float32.
            averaged = [t.float() for t in averaged]
        return averaged, copied

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Write the shadow weights into `module` (cast to its dtypes)."""
        live = _live_tensors(module)
        for name, value in self.shadow.items():
            live[name].copy_(value)

    def state_dict_for_saving(self) -> dict[str, torch.Tensor]:
        """The shadow weights under the module's state_dict names (for model.safetensors)."""
        return dict(self.shadow)

    def state_dict(self) -> dict[str, Any]:
        return {
            "shadow": dict(self.shadow),
            "min_decay": self.min_decay,
            "max_decay": self.max_decay,
            "decay": self.decay,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            differing = sorted(set(shadow) ^ set(self.shadow))[:3]
            raise ValueError(f"EMA state does not match the model (differing entries {differing})")
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        self.min_decay = float(state["min_decay"])
        self.max_decay = float(state["max_decay"])
        self.decay = float(state["decay"])


def _averaged_names(module: nn.Module) -> list[str]:
    """state_dict names of trainable floating-point parameters (the averaged entries)."""
    trainable = {id(p) for p in module.parameters() if p.requires_grad and p.is_floating_point()}
    return [name for name, t in module.state_dict(keep_vars=True).items() if id(t) in trainable]


def _live_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict names → the module's own parameters and buffers (not copies)."""
    return dict(module.state_dict(keep_vars=True))


def _shadow_like(tensor: torch.Tensor) -> torch.Tensor:
    dtype = torch.float32 if tensor.is_floating_point() else tensor.dtype
    return tensor.detach().to(dtype=dtype, copy=True)
