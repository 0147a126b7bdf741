import pytest
import torch
from torch import nn

from neuralcli.config.build import build_config
from neuralcli.errors import ConfigError
from neuralcli.training.diffusion_objective import DiffusionLossConfig, DiffusionObjective
from neuralcli.training.objective import LossOutput


class TinyEpsModel(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.proj = nn.Linear(channels, channels)
        self.time = nn.Embedding(1000, channels)

    def forward(self, x, timesteps):
        return self.proj(x) + self.time(timesteps)[:, None, :]  # (B, T, C)


class RecordingModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, timesteps):
        self.seen.append((x.clone(), timesteps.clone()))
        return torch.zeros_like(x)


@pytest.mark.parametrize("loss", ["mse", "smooth_l1"])
def test_training_loss_is_finite_and_gradient_flows(loss):
    torch.manual_seed(0)
    model = TinyEpsModel(3)
    objective = DiffusionObjective(config=DiffusionLossConfig(loss=loss))
    batch = torch.randn(8, 16, 3)
    out = objective.training_loss(model, batch)
    assert isinstance(out, LossOutput)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.metrics == {"eps_loss": pytest.approx(out.loss.item())}
    out.loss.backward()
    assert model.proj.weight.grad is not None and model.proj.weight.grad.abs().sum() > 0
    assert model.time.weight.grad.abs().sum() > 0


def test_zero_prediction_loss_is_the_noise_power():
    # With ε̂ = 0 the MSE is E[ε²] = 1; SmoothL1(β) is E[|ε|] − β/2 away from 0 (≈ 0.78).
    batch = torch.randn(64, 32, 4, generator=torch.Generator().manual_seed(1))
    mse = DiffusionObjective(config=DiffusionLossConfig()).training_loss(RecordingModel(), batch)
    assert mse.loss.item() == pytest.approx(1.0, abs=0.05)
    smooth = DiffusionObjective(config=DiffusionLossConfig(loss="smooth_l1"))
    assert smooth.training_loss(RecordingModel(), batch).loss.item() == pytest.approx(
        0.78, abs=0.03
    )


def test_model_gets_noised_batch_and_int64_timesteps():
    objective = DiffusionObjective(config=DiffusionLossConfig())
    model = RecordingModel()
    batch = torch.randn(6, 5, 2)
    torch.manual_seed(3)
    objective.training_loss(model, batch)
    noisy, timesteps = model.seen[0]
    assert noisy.shape == batch.shape and not torch.equal(noisy, batch)
    assert timesteps.shape == (6,) and timesteps.dtype == torch.int64
    assert 0 <= timesteps.min() and timesteps.max() < 1000


def test_validation_loss_is_deterministic_and_leaves_global_rng_alone():
    objective = DiffusionObjective(config=DiffusionLossConfig(loss="smooth_l1"))
    model = TinyEpsModel(3)
    batch = torch.randn(8, 10, 3, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    state = torch.get_rng_state()
    with torch.no_grad():
        first = objective.validation_loss(model, batch)
        second = objective.validation_loss(model, batch)
    assert torch.equal(torch.get_rng_state(), state)
    assert first.loss.item() == second.loss.item()
    assert first.metrics["eps_loss"] == second.metrics["eps_loss"]


def test_training_draws_differ_between_calls():
    objective = DiffusionObjective(config=DiffusionLossConfig())
    model = RecordingModel()
    batch = torch.randn(4, 5, 2)
    objective.training_loss(model, batch)
    objective.training_loss(model, batch)
    assert not torch.equal(model.seen[0][0], model.seen[1][0])


def test_config_validation():
    with pytest.raises(ValueError, match="loss must be one of"):
        DiffusionLossConfig(loss="l1")
    with pytest.raises(ValueError, match="smooth_l1_beta"):
        DiffusionLossConfig(loss="smooth_l1", smooth_l1_beta=0.0)
    with pytest.raises(ConfigError):
        build_config(DiffusionLossConfig, {"loss": "huber"})
    config = build_config(DiffusionLossConfig, {"loss": "smooth_l1", "smooth_l1_beta": 0.05})
    assert config.smooth_l1_beta == 0.05
