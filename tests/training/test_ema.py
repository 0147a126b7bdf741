import pytest
import torch
from torch import nn

from neuralcli.training.ema import EMA, ema_decay


def test_decay_follows_diffusers_0_3_0():
    # s = optimizer_step − 1; the first two updates copy (LDNS §8)
    assert ema_decay(0) == 0.0
    assert ema_decay(1) == 0.0
    assert ema_decay(2) == pytest.approx(1 - 2 ** (-2 / 3))
    assert ema_decay(10**9) == 0.9999
    assert ema_decay(6999) == pytest.approx(0.9973, abs=1e-4)  # Lorenz, 7000 steps
    assert ema_decay(7999) == pytest.approx(0.9975, abs=1e-4)  # monkey, 8000 steps


def test_min_decay_applies_after_the_copies():
    decays = [ema_decay(s, min_decay=0.9999) for s in range(4)]
    assert decays == [0.0, 0.0, 0.9999, 0.9999]


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.norm = nn.BatchNorm1d(4)  # float and integer buffers
        self.frozen = nn.Parameter(torch.randn(2), requires_grad=False)


def _perturb(model: nn.Module, generator: torch.Generator) -> None:
    with torch.no_grad():
        for tensor in model.state_dict(keep_vars=True).values():
            if tensor.is_floating_point():
                tensor.add_(torch.randn(tensor.shape, generator=generator))
            else:
                tensor.add_(1)


def test_update_matches_the_formula():
    torch.manual_seed(0)
    model = Tiny()
    ema = EMA(model, max_decay=0.99)
    reference = {k: v.detach().clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    for step in range(6):
        _perturb(model, generator)
        ema.update(model, step)
        decay = ema_decay(step, max_decay=0.99)
        for name in ("linear.weight", "linear.bias", "norm.weight", "norm.bias"):
            current = model.state_dict()[name]
            reference[name] = decay * reference[name] + (1 - decay) * current
        for name in ("frozen", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"):
            reference[name] = model.state_dict()[name].clone()
        for name, value in reference.items():
            torch.testing.assert_close(ema.shadow[name], value.to(ema.shadow[name].dtype))
    assert ema.shadow["norm.num_batches_tracked"].dtype == torch.int64
    assert ema.shadow["norm.num_batches_tracked"].item() == 6


def test_shadow_is_float32_for_a_bf16_model():
    model = Tiny().to(torch.bfloat16)
    ema = EMA(model)
    assert ema.shadow["linear.weight"].dtype == torch.float32
    _perturb(model, torch.Generator().manual_seed(0))
    ema.update(model, 5)
    assert ema.shadow["linear.weight"].dtype == torch.float32


def test_state_dict_round_trip_and_copy_to():
    torch.manual_seed(0)
    model = Tiny()
    ema = EMA(model, max_decay=0.9)
    generator = torch.Generator().manual_seed(2)
    for step in range(4):
        _perturb(model, generator)
        ema.update(model, step)
    restored = EMA(Tiny(), max_decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert restored.max_decay == 0.9
    target = Tiny()
    restored.copy_to(target)
    saved = ema.state_dict_for_saving()
    assert list(saved) == list(model.state_dict())
    for name, value in target.state_dict().items():
        assert torch.equal(value, saved[name])


def test_load_rejects_another_model():
    ema = EMA(Tiny())
    with pytest.raises(ValueError, match="does not match"):
        ema.load_state_dict(EMA(nn.Linear(3, 4)).state_dict())
