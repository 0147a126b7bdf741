"""Autoencoder objective on padded variable-length trials (LDNS §4, human variant)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuralcli.data.masked_datasets import MaskedSpikes, MaskedSpikeSource
from neuralcli.models.autoencoder import AutoencoderConfig, AutoencoderOutput, SpikeAutoencoder
from neuralcli.training.ae_objective import (
    AutoencoderLossConfig,
    AutoencoderObjective,
    drop_mask,
    poisson_nll,
)

CONFIG = AutoencoderLossConfig(mask_prob=0.3, latent_beta=0.5, latent_td_beta=0.25, td_k=3)
LENGTHS = (12, 7, 3)


class FixedModel(nn.Module):
    """Returns fixed rates/latents and records its input."""

    def __init__(self, rates: torch.Tensor, latents: torch.Tensor) -> None:
        super().__init__()
        self.rates, self.latents, self.seen = rates, latents, None

    def forward(self, spikes: torch.Tensor) -> AutoencoderOutput:
        self.seen = spikes.clone()
        return AutoencoderOutput(rates=self.rates, latents=self.latents)


def padded_batch(seed: int, *, n_neurons: int = 5, length: int = 12) -> MaskedSpikes:
    generator = torch.Generator().manual_seed(seed)
    spikes = torch.poisson(torch.full((len(LENGTHS), length, n_neurons), 1.2), generator=generator)
    mask = torch.arange(length)[None, :] < torch.tensor(LENGTHS)[:, None]  # (B, T)
    return MaskedSpikes(spikes=spikes * mask[..., None], mask=mask)


def tiny_autoencoder() -> SpikeAutoencoder:
    torch.manual_seed(0)
    config = AutoencoderConfig(n_neurons=5, hidden_channels=8, latent_channels=2, num_blocks=1)
    return SpikeAutoencoder(config=config)


def with_garbage_padding(batch: MaskedSpikes) -> MaskedSpikes:
    garbage = torch.full_like(batch.spikes, 7.0)
    return batch._replace(spikes=torch.where(batch.mask[..., None], batch.spikes, garbage))


@pytest.mark.parametrize("phase", ["training", "validation"])
def test_padded_spikes_change_nothing(phase: str) -> None:
    model = tiny_autoencoder()
    objective = AutoencoderObjective(config=CONFIG)
    loss = getattr(objective, f"{phase}_loss")
    batch = padded_batch(1)
    torch.manual_seed(9)
    clean = loss(model, batch)
    torch.manual_seed(9)
    dirty = loss(model, with_garbage_padding(batch))
    assert torch.equal(clean.loss, dirty.loss)
    assert clean.metrics == dirty.metrics
    dirty.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("phase", ["training", "validation"])
def test_all_valid_mask_equals_unmasked_loss(phase: str) -> None:
    model = tiny_autoencoder()
    objective = AutoencoderObjective(config=CONFIG)
    loss = getattr(objective, f"{phase}_loss")
    spikes = padded_batch(2).spikes + 1.0  # no zero padding anywhere
    all_valid = torch.ones(spikes.shape[:2], dtype=torch.bool)
    torch.manual_seed(4)
    masked = loss(model, MaskedSpikes(spikes, all_valid))
    torch.manual_seed(4)
    plain = loss(model, spikes)
    torch.testing.assert_close(masked.loss, plain.loss)
    assert masked.metrics == pytest.approx(plain.metrics, rel=1e-6)


def test_training_terms_count_only_real_bins() -> None:
    batch = padded_batch(3)
    rates = torch.rand(batch.spikes.shape, generator=torch.Generator().manual_seed(5)) + 0.1
    latents = torch.randn((*batch.spikes.shape[:2], 2), generator=torch.Generator().manual_seed(6))
    model = FixedModel(rates, latents)
    torch.manual_seed(11)
    out = AutoencoderObjective(config=CONFIG).training_loss(model, batch)
    torch.manual_seed(11)
    keep = drop_mask(batch.spikes.shape, CONFIG.mask_prob, batch.spikes.device) == 0
    valid = batch.mask[..., None]
    torch.testing.assert_close(model.seen, batch.spikes * keep / 0.7 * valid)
    numel = batch.spikes.numel()  # the reference's denominator: every input element
    poisson = (poisson_nll(rates, batch.spikes) * (~keep & valid)).sum() / numel
    l2, td = torch.zeros(()), torch.zeros(())
    for b, length in enumerate(LENGTHS):
        z = latents[b, :length]  # real bins only
        l2 = l2 + z.square().sum()
        for i in range(1, CONFIG.td_k + 1):
            td = td + (z[:-i] - z[i:]).square().sum() / (1 + i)
    expected = poisson + 0.5 * l2 / numel + 0.25 * td / numel
    torch.testing.assert_close(out.loss, expected)
    assert out.metrics["latent_td"] == pytest.approx(float(td / numel), rel=1e-5)


def test_validation_scores_real_bins_times_p() -> None:
    batch = padded_batch(4)
    rates = torch.rand(batch.spikes.shape) + 0.1
    model = FixedModel(rates, torch.zeros((*batch.spikes.shape[:2], 2)))
    config = AutoencoderLossConfig(mask_prob=0.2, latent_beta=0.0, latent_td_beta=0.0)
    out = AutoencoderObjective(config=config).validation_loss(model, with_garbage_padding(batch))
    torch.testing.assert_close(model.seen, batch.spikes)  # padding zeroed before the model
    nll = poisson_nll(rates, batch.spikes) * batch.mask[..., None]
    torch.testing.assert_close(out.loss, nll.sum() / batch.spikes.numel() * 0.2)


def test_mask_shape_mismatch_is_an_error() -> None:
    batch = padded_batch(5)
    model = FixedModel(torch.ones_like(batch.spikes), torch.zeros((3, 12, 2)))
    with pytest.raises(ValueError, match="mask shape"):
        AutoencoderObjective(config=CONFIG).validation_loss(
            model, MaskedSpikes(batch.spikes, batch.mask[:, :5])
        )


def test_masked_source_batches_float_spikes_and_bool_mask() -> None:
    spikes = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[:, :4] = 1
    source = MaskedSpikeSource(spikes, mask)
    assert len(source) == 4 and source.shape == (4, 6, 3)
    batch = source.batch(torch.tensor([2, 0]))
    assert isinstance(batch, MaskedSpikes)
    assert batch.spikes.dtype == torch.float32 and batch.mask.dtype == torch.bool
    torch.testing.assert_close(batch.spikes, torch.from_numpy(spikes[[2, 0]]).float())
    assert batch.mask.sum().item() == 8


def test_masked_source_rejects_bad_inputs() -> None:
    spikes = np.zeros((2, 5, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="mask must be"):
        MaskedSpikeSource(spikes, np.ones((2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="0/1"):
        MaskedSpikeSource(spikes, np.full((2, 5), 2, dtype=np.uint8))
    with pytest.raises(ValueError, match="integer counts"):
        MaskedSpikeSource(spikes.astype(np.float32), np.ones((2, 5), dtype=np.uint8))
