"""AdamW for the training loop: torch's AdamW, minus the torch._dynamo import on CPU.

`torch.optim.Optimizer` wraps `add_param_group`, `zero_grad`, `state_dict` and
`load_state_dict` in `torch._disable_dynamo`, and `step` in a helper that calls
`torch._dynamo.graph_break()`; both import torch._dynamo on first use. That import pulls in
about 830 modules (sympy, mpmath, ...): +76 MB resident memory and about a second of start-up
in every training process (DDP ranks included), whether or not anything is compiled. On the
MC_Maze autoencoder benchmark that is a tenth of the step's peak memory.

`AdamW` here is `torch.optim.AdamW` (same constructor, defaults, state layout and
state_dict, so checkpoints of either load into the other) with:
- the four bookkeeping methods called undecorated (the wrapped originals, which
  `functools.wraps` keeps as `__wrapped__`); dynamo only needs the decoration when it traces
  the optimizer, which neuralcli never does (`--compile` compiles the model);
- `step` on CPU tensors doing torch's own single-tensor update (torch's CPU default: no
  foreach, no fused kernel) in the same operation order, so the weights are bit-identical
  (tests/training/test_optimizer.py). Every other case (CUDA, fused, foreach, amsgrad,
  maximize, capturable, differentiable) goes to torch's `step` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

_BOOKKEEPING = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def _undecorated(name: str) -> Callable[..., Any]:
    """`torch.optim.Optimizer.<name>` without its torch._dynamo wrapper, when it has one."""
    method = getattr(torch.optim.Optimizer, name)
    return getattr(method, "__wrapped__", method)


class AdamW(torch.optim.AdamW):
    """torch.optim.AdamW (Loshchilov & Hutter decoupled weight decay) that leaves
    torch._dynamo unimported on CPU. Arguments as torch.optim.AdamW."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _undecorated("add_param_group")(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _undecorated("zero_grad")(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _undecorated("state_dict")(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _undecorated("load_state_dict")(self, state_dict)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One AdamW update of every parameter that has a gradient; returns closure()."""
        if not self._plain_cpu_update():
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _plain_cpu_update(self) -> bool:
        """Whether every group takes torch's single-tensor CPU path (the one mirrored here)."""
        for group in self.param_groups:
            flags = ("foreach", "fused", "amsgrad", "maximize", "capturable", "differentiable")
            if any(group.get(flag) for flag in flags):
                return False
            if not group.get("decoupled_weight_decay", True):
                return False
            if not all(isinstance(group[key], float) for key in ("lr", "weight_decay", "eps")):
                return False
            if not all(isinstance(beta, float) for beta in group["betas"]):
                return False
            for param in group["params"]:
                if param.device.type != "cpu" or param.is_complex():
                    return False
                if param.grad is not None and param.grad.is_sparse:
                    return False
        return True

    def _update_group(self, group: dict[str, Any]) -> None:
        """torch's `_single_tensor_adam` with decoupled weight decay, op for op."""
        lr, weight_decay, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            state = self.state[param]
            if not state:
                # The state torch's AdamW creates: a float32 CPU step counter, zero moments.
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]
            step_t += 1
            if weight_decay != 0:
                param.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = step_t.item()
            bias_correction1 = 1 - beta1**step
            bias_correction2_sqrt = (1 - beta2**step) ** 0.5
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-(lr / bias_correction1))
