"""Diffusion objective on conditioned batches (LDNS §8, §9) and their batch source."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuralcli.data.datasets import ConditionedLatents, ConditionedLatentSource
from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.training.diffusion_objective import DiffusionLossConfig, DiffusionObjective
from neuralcli.training.loop import to_device


class RecordingModel(nn.Module):
    """Returns ε̂ = 0 on the latent channels plus `extra` channels of `fill`; records its calls."""

    def __init__(self, extra: int = 0, fill: float = 0.0):
        super().__init__()
        self.extra, self.fill, self.seen = extra, fill, []

    def forward(self, x, timesteps, **conditions):
        self.seen.append((x.clone(), timesteps.clone(), conditions))
        padding = torch.full((*x.shape[:2], self.extra), self.fill)
        return torch.cat((torch.zeros_like(x), padding), dim=-1)


class MaskedNoiseModel(nn.Module):
    """ε̂ = 0 on real bins and huge values on padding bins."""

    def forward(self, x, timesteps, mask):
        return (1 - mask)[..., None] * 1e3 * torch.ones_like(x)


def batch_with(generator_seed=0, **conditions):
    latents = torch.randn(4, 12, 3, generator=torch.Generator().manual_seed(generator_seed))
    return ConditionedLatents(latents=latents, **conditions)


def centred_mask(batch=4, length=12, lengths=(4, 6, 8, 12)):
    mask = torch.zeros(batch, length)
    for row, real in enumerate(lengths):
        start = (length - real) // 2
        mask[row, start : start + real] = 1.0
    return mask


def test_conditions_reach_the_model_and_only_latents_are_noised():
    angle, velocity = torch.tensor([0.1, -1.0, 2.0, 3.0]), torch.randn(4, 12, 2)
    model = RecordingModel()
    objective = DiffusionObjective(config=DiffusionLossConfig(loss="smooth_l1"))
    objective.training_loss(model, batch_with(angle=angle, velocity=velocity))
    noisy, timesteps, conditions = model.seen[0]
    assert noisy.shape == (4, 12, 3) and timesteps.shape == (4,)
    assert set(conditions) == {"angle", "velocity"}
    assert torch.equal(conditions["angle"], angle)
    assert torch.equal(conditions["velocity"], velocity)  # clean, not noised


def test_extra_output_channels_are_sliced_off_before_the_loss():
    objective = DiffusionObjective(
        config=DiffusionLossConfig(loss="smooth_l1", smooth_l1_beta=0.05)
    )
    batch = batch_with(velocity=torch.randn(4, 12, 2))
    with torch.no_grad():
        sliced = objective.validation_loss(RecordingModel(extra=2, fill=50.0), batch)
        plain = objective.validation_loss(RecordingModel(), batch)
    assert sliced.loss.item() == plain.loss.item()


@pytest.mark.parametrize("loss", ["mse", "smooth_l1"])
def test_masked_loss_ignores_padding_bins_and_averages_over_all_elements(loss):
    objective = DiffusionObjective(config=DiffusionLossConfig(loss=loss))
    mask = centred_mask()
    batch = batch_with(mask=mask)
    with torch.no_grad():
        masked = objective.validation_loss(MaskedNoiseModel(), batch)
    # The same (t, ε) as the objective draws for validation: ε̂ = 0 on real bins.
    generator = torch.Generator().manual_seed(DiffusionObjective.validation_seed)
    torch.randint(0, 1000, (4,), generator=generator)
    noise = torch.randn(batch.latents.shape, generator=generator)
    zero = torch.zeros_like(noise)
    if loss == "mse":
        elementwise = F.mse_loss(zero, noise, reduction="none")
    else:
        elementwise = F.smooth_l1_loss(zero, noise, reduction="none", beta=0.04)
    expected = (elementwise * mask[..., None]).sum() / noise.numel()  # LDNS §8: × mask, mean
    assert masked.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_conditioned_validation_is_deterministic_and_trains_a_real_denoiser():
    torch.manual_seed(0)
    model = Denoiser(
        config=DenoiserConfig(
            latent_channels=3, hidden_channels=12, num_blocks=1, state_size=4, condition="length"
        )
    )
    objective = DiffusionObjective(config=DiffusionLossConfig(loss="smooth_l1"))
    batch = batch_with(mask=centred_mask())
    with torch.no_grad():
        first = objective.validation_loss(model, batch)
        second = objective.validation_loss(model, batch)
    assert first.loss.item() == second.loss.item()
    out = objective.training_loss(model, batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert model.conv_in.weight.grad.abs().sum() > 0


def test_conditioned_source_batches_and_device_transfer():
    n, length = 6, 5
    latents = torch.randn(n, length, 3)
    angle = torch.linspace(-3, 3, n, dtype=torch.float64)
    velocity = torch.randn(n, length, 2)
    source = ConditionedLatentSource(latents, angle=angle.numpy(), velocity=velocity)
    assert len(source) == n and source.shape == (n, length, 3)
    batch = source.batch(torch.tensor([4, 1]))
    assert isinstance(batch, ConditionedLatents) and batch.mask is None
    assert torch.equal(batch.latents, latents[[4, 1]])
    assert batch.angle.dtype == torch.float32
    torch.testing.assert_close(batch.angle, angle[[4, 1]].float())
    assert torch.equal(batch.velocity, velocity[[4, 1]])
    assert set(batch.conditions()) == {"angle", "velocity"}
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved, ConditionedLatents) and moved.mask is None

    masked = ConditionedLatentSource(latents, mask=torch.ones(n, length, dtype=torch.uint8))
    assert masked.batch(torch.tensor([0])).mask.dtype == torch.float32
    with pytest.raises(ValueError, match=r"velocity must have shape \(6, 5, 2\)"):
        ConditionedLatentSource(latents, velocity=torch.zeros(n, length, 3))
    with pytest.raises(ValueError, match="angle must have shape"):
        ConditionedLatentSource(latents, angle=torch.zeros(n + 1))
    with pytest.raises(ValueError, match="finite"):
        ConditionedLatentSource(latents, angle=torch.full((n,), float("nan")))
