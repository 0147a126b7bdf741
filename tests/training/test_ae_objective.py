"""Autoencoder objective (LDNS §4): Poisson NLL, coordinated-dropout masking, regularisers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuralcli.models.autoencoder import AutoencoderConfig, AutoencoderOutput, SpikeAutoencoder
from neuralcli.training.ae_objective import (
    AutoencoderLossConfig,
    AutoencoderObjective,
    drop_mask,
    poisson_nll,
    scored_poisson_nll,
)


class FixedModel(nn.Module):
    """Returns fixed rates/latents and records its input."""

    def __init__(self, rates: torch.Tensor, latents: torch.Tensor) -> None:
        super().__init__()
        self.rates, self.latents, self.seen = rates, latents, None

    def forward(self, spikes: torch.Tensor) -> AutoencoderOutput:
        self.seen = spikes.clone()
        return AutoencoderOutput(rates=self.rates, latents=self.latents)


def explicit_td(latents: torch.Tensor, k: int) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    length = latents.shape[1]
    for i in range(1, k + 1):
        for t in range(length - i):
            total += ((latents[:, t] - latents[:, t + i]).double() ** 2).sum() / (1 + i)
    return total


def test_poisson_nll_matches_torch_full() -> None:
    torch.manual_seed(0)
    rates = torch.rand(4, 9, 5) * 3 + 1e-3
    counts = torch.poisson(torch.full((4, 9, 5), 1.5))
    counts[0, 0, :3] = torch.tensor([0.0, 1.0, 2.0])
    expected = F.poisson_nll_loss(rates, counts, log_input=False, full=True, reduction="none")
    torch.testing.assert_close(poisson_nll(rates, counts), expected)


def test_training_loss_masks_and_scores_dropped_entries() -> None:
    torch.manual_seed(1)
    counts = torch.poisson(torch.full((3, 10, 4), 1.0))
    rates = torch.rand(3, 10, 4) + 0.1
    latents = torch.randn(3, 10, 2)
    config = AutoencoderLossConfig(mask_prob=0.3, latent_beta=0.5, latent_td_beta=0.25, td_k=3)
    model = FixedModel(rates, latents)
    torch.manual_seed(123)
    out = AutoencoderObjective(config=config).training_loss(model, counts)
    torch.manual_seed(123)
    keep = drop_mask(counts.shape, 0.3, counts.device) == 0
    torch.testing.assert_close(model.seen, counts * keep / 0.7)
    numel = counts.numel()
    poisson = (poisson_nll(rates, counts) * (~keep)).sum() / numel  # dropped only, over all
    l2 = latents.square().sum() / numel  # divided by the INPUT's numel
    td = explicit_td(latents, 3).float() / numel
    torch.testing.assert_close(out.loss, poisson + 0.5 * l2 + 0.25 * td)
    assert set(out.metrics) == {"poisson", "latent_l2", "latent_td"}
    assert all(isinstance(v, float) for v in out.metrics.values())
    assert out.metrics["poisson"] == pytest.approx(float(poisson), rel=1e-6)
    assert out.metrics["latent_td"] == pytest.approx(float(td), rel=1e-5)


def test_scored_poisson_nll_is_the_masked_sum_with_its_gradient() -> None:
    torch.manual_seed(9)
    rates = (torch.rand(3, 7, 5, dtype=torch.float64) * 2 + 1e-3).requires_grad_()
    counts = torch.poisson(torch.full((3, 7, 5), 1.8, dtype=torch.float64))
    counts[0, 0, :4] = torch.tensor([0.0, 1.0, 2.0, 5.0])  # both sides of the Stirling term
    scored = (torch.rand(3, 7, 5) < 0.4).double()
    scored[0, 0, :4] = 1.0
    expected = (poisson_nll(rates, counts) * scored).sum()
    torch.testing.assert_close(scored_poisson_nll(rates, counts, scored), expected)
    assert torch.autograd.gradcheck(lambda r: scored_poisson_nll(r, counts, scored), (rates,))
    (grad,) = torch.autograd.grad(scored_poisson_nll(rates, counts, scored), rates)
    (plain,) = torch.autograd.grad(expected, rates)
    torch.testing.assert_close(grad, plain)


def test_scored_poisson_nll_float32_matches_plain_composition() -> None:
    torch.manual_seed(10)
    rates = (torch.rand(4, 30, 9) + 0.05).requires_grad_()
    counts = torch.poisson(torch.full((4, 30, 9), 0.6))
    scored = drop_mask(counts.shape, 0.5, counts.device)
    fused = scored_poisson_nll(rates, counts, scored)
    plain = poisson_nll(rates, counts).masked_fill(scored == 0, 0.0).sum()
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(
        torch.autograd.grad(fused, rates)[0], torch.autograd.grad(plain, rates)[0]
    )


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_drop_mask_rate_and_reproducibility(p: float) -> None:
    torch.manual_seed(11)
    mask = drop_mask((400, 501), p, torch.device("cpu"))  # odd count: half an int64 unused
    assert mask.dtype == torch.float32 and mask.shape == (400, 501)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    # 200,400 Bernoulli(p) draws: the rate is within 5 standard errors of p.
    assert abs(float(mask.mean()) - p) < 5 * (p * (1 - p) / mask.numel()) ** 0.5
    torch.manual_seed(11)
    torch.testing.assert_close(drop_mask((400, 501), p, torch.device("cpu")), mask)


def test_drop_mask_with_zero_probability_drops_nothing() -> None:
    assert float(drop_mask((64, 70), 0.0, torch.device("cpu")).sum()) == 0.0


def test_validation_is_unmasked_mean_times_p() -> None:
    torch.manual_seed(2)
    counts = torch.poisson(torch.full((2, 8, 3), 0.7))
    rates = torch.rand(2, 8, 3) + 0.1
    latents = torch.randn(2, 8, 2)
    model = FixedModel(rates, latents)
    config = AutoencoderLossConfig(mask_prob=0.2, latent_beta=0.0, latent_td_beta=0.0)
    out = AutoencoderObjective(config=config).validation_loss(model, counts)
    torch.testing.assert_close(model.seen, counts)
    torch.testing.assert_close(out.loss, poisson_nll(rates, counts).mean() * 0.2)


def test_loss_trains_a_tiny_autoencoder() -> None:
    torch.manual_seed(3)
    model = SpikeAutoencoder(
        config=AutoencoderConfig(n_neurons=6, hidden_channels=8, latent_channels=2, num_blocks=1)
    )
    counts = torch.poisson(torch.full((4, 16, 6), 0.5))
    out = AutoencoderObjective(config=AutoencoderLossConfig()).training_loss(model, counts)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("field", "value"),
    [("mask_prob", 1.0), ("mask_prob", -0.1), ("latent_beta", -1.0), ("td_k", -1)],
)
def test_config_validation_names_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        AutoencoderLossConfig(**{field: value})
