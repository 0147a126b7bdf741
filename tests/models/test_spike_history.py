"""Spike-history GLM (LDNS §5): teacher-forced rates, autoregressive sampling, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralcli.errors import DataError, RunDirError
from neuralcli.models.spike_history import SpikeHistoryConfig, SpikeHistoryGLM, log_rates_of
from neuralcli.runtime.checkpoint import save_model
from neuralcli.runtime.device import Runtime
from neuralcli.training.config import TrainingConfig
from neuralcli.training.loop import train
from neuralcli.training.spike_history_objective import (
    SpikeHistoryObjective,
    SpikeHistorySource,
    full_poisson_nll,
)


def _glm(n_neurons: int = 3, history_bins: int = 4, seed: int = 0) -> SpikeHistoryGLM:
    torch.manual_seed(seed)
    config = SpikeHistoryConfig(n_neurons=n_neurons, history_bins=history_bins)
    return SpikeHistoryGLM(config=config)


def test_teacher_forced_rate_matches_hand_computation() -> None:
    model = _glm(n_neurons=3, history_bins=4)
    generator = torch.Generator().manual_seed(1)
    spikes = torch.randint(0, 8, (2, 10, 3), generator=generator)  # counts above 5 get clipped
    log_rates = torch.randn(2, 10, 3, generator=generator)
    rates = model(spikes, log_rates)
    assert rates.shape == (2, 10 - 4, 3)

    b, t, n = 1, 7, 2
    w = model.weight.detach().double()
    clipped = spikes.double().clamp(max=5)
    drive = sum(w[n, k - 1] * clipped[b, t - 4 - 1 + k, n] for k in range(1, 5))
    drive += w[n, 4] * log_rates[b, t, n].double() + w[n, 5]
    expected = math.log1p(math.exp(float(drive)))
    assert float(rates[b, t - 4, n].detach()) == pytest.approx(expected, rel=1e-5)


def test_forward_checks_shapes() -> None:
    model = _glm(n_neurons=3, history_bins=4)
    with pytest.raises(DataError, match="T > 4"):
        model(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3))
    with pytest.raises(DataError, match=r"\(B, T, 3\)"):
        model(torch.zeros(1, 8, 2), torch.zeros(1, 8, 2))


def _reference_sample(model: SpikeHistoryGLM, log_rates: torch.Tensor, seed: int) -> torch.Tensor:
    """The LDNS §5 recursion written out bin by bin, drawing as the model does."""
    generator = torch.Generator().manual_seed(seed)
    w = model.weight.detach()
    history = model.config.history_bins
    batch, length, n_neurons = log_rates.shape
    out = torch.zeros(batch, length, n_neurons)
    for t in range(length):
        drive = w[:, history] * log_rates[:, t] + w[:, history + 1]  # (B, N)
        for k in range(1, history + 1):
            source = t - history - 1 + k
            if source >= 0:  # zero history before the first bin
                drive = drive + w[:, k - 1] * out[:, source]
        draw = torch.poisson(torch.nn.functional.softplus(drive), generator=generator)
        out[:, t] = draw.clamp(max=model.config.max_count)
    return out.long()


def test_sample_matches_the_recursion_from_zero_history() -> None:
    model = _glm(n_neurons=3, history_bins=4)
    with torch.no_grad():
        model.weight.mul_(0.5)
    log_rates = torch.randn(5, 12, 3, generator=torch.Generator().manual_seed(2))
    sampled = model.sample(log_rates, generator=torch.Generator().manual_seed(3))
    assert sampled.dtype == torch.int64 and sampled.shape == (5, 12, 3)
    assert torch.equal(sampled, _reference_sample(model, log_rates, seed=3))


def test_sample_caps_counts_and_is_deterministic() -> None:
    model = _glm(n_neurons=2, history_bins=3)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[:, -1] = 3.0  # λ ≈ 3.05: many draws exceed 5 before the cap
    log_rates = torch.zeros(50, 20, 2)
    first = model.sample(log_rates, generator=torch.Generator().manual_seed(0))
    second = model.sample(log_rates, generator=torch.Generator().manual_seed(0))
    other = model.sample(log_rates, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert int(first.max()) == 5 and int(first.min()) >= 0


def _lag_one_correlation(counts: np.ndarray) -> float:
    x = counts[:, :-1].ravel().astype(np.float64)
    y = counts[:, 1:].ravel().astype(np.float64)
    return float(np.corrcoef(x, y)[0, 1])


def test_positive_self_history_gives_burstier_trains() -> None:
    flat = _glm(n_neurons=1, history_bins=5)
    excited = _glm(n_neurons=1, history_bins=5)
    with torch.no_grad():
        flat.weight.zero_()
        flat.weight[0, -1] = -2.0
        excited.weight.zero_()
        excited.weight[0, 3:5] = 1.2  # s(t−2), s(t−1) excite λ(t)
        excited.weight[0, -1] = -2.5
    log_rates = torch.zeros(200, 100, 1)
    flat_counts = flat.sample(log_rates, generator=torch.Generator().manual_seed(0))[..., 0]
    burst_counts = excited.sample(log_rates, generator=torch.Generator().manual_seed(0))[..., 0]
    assert abs(_lag_one_correlation(flat_counts.numpy())) < 0.05
    assert _lag_one_correlation(burst_counts.numpy()) > 0.2
    # Over-dispersion of per-trial totals: Fano factor ≈ 1 for Poisson, larger for bursts.
    flat_totals = flat_counts.sum(1).double()
    burst_totals = burst_counts.sum(1).double()
    assert float(burst_totals.var() / burst_totals.mean()) > 1.5 * float(
        flat_totals.var() / flat_totals.mean()
    )


def test_training_recovers_planted_weights(tmp_path) -> None:
    planted = _glm(n_neurons=2, history_bins=3)
    with torch.no_grad():
        planted.weight.copy_(
            torch.tensor([[0.6, -0.4, 0.3, 0.8, -0.5], [-0.8, 0.2, 0.5, 1.2, -1.0]])
        )
    generator = torch.Generator().manual_seed(5)
    time = torch.arange(80, dtype=torch.float32)
    phase = torch.rand(200, 1, 2, generator=generator) * 6.28
    log_rates = 0.8 * torch.sin(time[None, :, None] / 6.0 + phase) - 0.3  # (200, 80, 2)
    spikes = planted.sample(log_rates, generator=generator)

    model = SpikeHistoryGLM(config=SpikeHistoryConfig(n_neurons=2, history_bins=3, init="zeros"))
    source = SpikeHistorySource(spikes, log_rates)
    config = TrainingConfig(
        epochs=120,
        batch_size=len(source),  # full batch: one step per epoch, as LDNS §5
        lr=0.1,
        weight_decay=0.0,
        warmup_epochs=0,
        lr_horizon_factor=1.0,
        grad_clip=0.0,
        val_every_epochs=0,
        checkpoint_every_steps=1000,
        log_every_steps=100,
    )
    result = train(
        model=model,
        objective=SpikeHistoryObjective(history_bins=3, max_count=5),
        train_data=source,
        val_data=None,
        config=config,
        runtime=Runtime(device=torch.device("cpu"), precision="fp32", seed=0),
        run_dir=tmp_path / "glm",
        model_kind=SpikeHistoryGLM.kind,
        model_config=model.config,
    )
    assert result.steps == 120  # one step per epoch
    assert torch.allclose(model.weight.detach(), planted.weight, atol=0.1)

    loaded = SpikeHistoryGLM.from_pretrained(tmp_path / "glm")
    assert torch.equal(loaded.weight, model.weight.detach())


def test_from_pretrained_round_trip_and_wrong_kind(tmp_path) -> None:
    model = _glm(n_neurons=3, history_bins=4)
    save_model(tmp_path / "glm", model.state_dict(), kind="spike-history", config=model.config)
    loaded = SpikeHistoryGLM.from_pretrained(tmp_path / "glm")
    assert loaded.config == model.config
    assert torch.equal(loaded.weight, model.weight.detach())
    save_model(tmp_path / "ae", model.state_dict(), kind="autoencoder", config=model.config)
    with pytest.raises(RunDirError):
        SpikeHistoryGLM.from_pretrained(tmp_path / "ae")


def test_log_rates_floor_and_config_validation() -> None:
    logs = log_rates_of(torch.tensor([0.0, 1.0]))
    assert torch.isfinite(logs).all() and float(logs[1]) == 0.0
    with pytest.raises(ValueError, match="history_bins"):
        SpikeHistoryConfig(history_bins=0)
    with pytest.raises(ValueError, match="init"):
        SpikeHistoryConfig(init="uniform")


def test_loss_is_torch_full_poisson_nll() -> None:
    generator = torch.Generator().manual_seed(4)
    rates = torch.rand(6, 30, 3, generator=generator, dtype=torch.float64) * 3
    counts = torch.poisson(rates * 1.2, generator=generator).clamp(max=5)
    expected = torch.nn.functional.poisson_nll_loss(rates, counts, log_input=False, full=True)
    assert float(full_poisson_nll(rates, counts)) == pytest.approx(float(expected), rel=1e-12)
