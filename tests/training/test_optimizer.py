"""neuralcli's AdamW: bit-identical to torch.optim.AdamW on CPU, without importing torch._dynamo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from neuralcli.training.optimizer import AdamW
from neuralcli.training.schedule import build_warmup_cosine


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.Linear(7, 3))


def _groups(model: nn.Module) -> list[dict]:
    """Two groups as the models give them: matrices decayed, biases not."""
    matrices = [p for p in model.parameters() if p.ndim == 2]
    vectors = [p for p in model.parameters() if p.ndim == 1]
    return [{"params": matrices, "weight_decay": 0.01}, {"params": vectors, "weight_decay": 0.0}]


def _steps(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, steps: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        model(torch.randn(16, 5, generator=generator)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int) -> None:
    scheduler = build_warmup_cosine(optimizer, warmup_steps=3, horizon_steps=20.0)
    _steps(model, optimizer, scheduler, steps, seed=1)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_updates_are_bit_identical_to_torch_adamw() -> None:
    ours_model, torch_model = _model(), _model()
    kwargs = {"lr": 3e-3, "betas": (0.9, 0.99), "weight_decay": 0.05}
    ours = AdamW(_groups(ours_model), **kwargs)
    reference = torch.optim.AdamW(_groups(torch_model), **kwargs)
    _train(ours_model, ours, steps=12)
    _train(torch_model, reference, steps=12)
    for mine, theirs in zip(_params(ours_model), _params(torch_model), strict=True):
        assert torch.equal(mine, theirs)
    for p_ours, p_ref in zip(ours_model.parameters(), torch_model.parameters(), strict=True):
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(ours.state[p_ours][key], reference.state[p_ref][key])


@pytest.mark.parametrize("direction", ["torch_to_ours", "ours_to_torch"])
def test_state_dicts_load_into_each_other(direction: str) -> None:
    """Resuming a run whose state.pt was written with the other class continues identically."""
    first, second = (torch.optim.AdamW, AdamW)
    if direction == "ours_to_torch":
        first, second = second, first

    def schedule(optimizer):
        return build_warmup_cosine(optimizer, warmup_steps=3, horizon_steps=20.0)

    straight_model = _model()
    straight = torch.optim.AdamW(_groups(straight_model), lr=1e-2)
    straight_schedule = schedule(straight)
    _steps(straight_model, straight, straight_schedule, 5, seed=1)
    _steps(straight_model, straight, straight_schedule, 5, seed=2)

    model = _model()
    before = first(_groups(model), lr=1e-2)
    before_schedule = schedule(before)
    _steps(model, before, before_schedule, 5, seed=1)
    after = second(_groups(model), lr=1e-2)
    after_schedule = schedule(after)
    after.load_state_dict(before.state_dict())
    after_schedule.load_state_dict(before_schedule.state_dict())
    _steps(model, after, after_schedule, 5, seed=2)
    for mine, theirs in zip(_params(model), _params(straight_model), strict=True):
        assert torch.equal(mine, theirs)


def test_other_settings_use_torchs_step() -> None:
    """foreach (and amsgrad, maximize, ...) are not mirrored: torch's own step runs them."""
    ours_model, torch_model = _model(), _model()
    ours = AdamW(ours_model.parameters(), lr=1e-2, amsgrad=True, foreach=True)
    reference = torch.optim.AdamW(torch_model.parameters(), lr=1e-2, amsgrad=True, foreach=True)
    _train(ours_model, ours, steps=4)
    _train(torch_model, reference, steps=4)
    for mine, theirs in zip(_params(ours_model), _params(torch_model), strict=True):
        assert torch.equal(mine, theirs)
    assert "max_exp_avg_sq" in next(iter(ours.state.values()))


def test_parameters_without_gradients_are_left_alone() -> None:
    model = _model()
    frozen = model[2].weight
    frozen.requires_grad_(False)
    before = frozen.detach().clone()
    optimizer = AdamW(model.parameters(), lr=1e-2)
    _train(model, optimizer, steps=2)
    assert torch.equal(frozen, before)
    assert frozen not in optimizer.state


# A fresh interpreter: this test process may have imported torch._dynamo through other tests.
_SCRIPT = """
import json, sys, torch
from neuralcli.training.optimizer import AdamW
model = torch.nn.Linear(4, 2)
optimizer = AdamW(model.parameters(), lr=1e-3)
model(torch.randn(3, 4)).sum().backward()
optimizer.step()
optimizer.zero_grad()
state = optimizer.state_dict()
AdamW(model.parameters(), lr=1e-3).load_state_dict(state)
print(json.dumps("torch._dynamo" in sys.modules))
"""


def test_cpu_training_does_not_import_dynamo() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) is False, (
        "torch._dynamo was imported: about 76 MB and a second of start-up per training process"
    )
