"""`train_spike_history`: AE rates of the AE's own training data -> a spike-history GLM run."""

from __future__ import annotations

import json

import pytest
import torch

from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.models.spike_history import SpikeHistoryConfig, SpikeHistoryGLM
from neuralcli.pipelines.train_spike_history import (
    SpikeHistoryRunConfig,
    file_sha256,
    train_spike_history,
)
from neuralcli.runtime.checkpoint import META_FILE, WEIGHTS_FILE, save_model
from neuralcli.runtime.device import Runtime
from neuralcli.training.config import TrainingConfig

SETTINGS = LorenzSettings(n_trials=30, length=32, n_neurons=8, seed=3)
RUNTIME = Runtime(device=torch.device("cpu"), precision="fp32", seed=0)


def _ae_run(home):
    torch.manual_seed(0)
    config = AutoencoderConfig(n_neurons=8, hidden_channels=16, latent_channels=4, num_blocks=1)
    ae_dir = home / "runs" / "ae-tiny"
    data = {"dataset": "lorenz", "settings": SETTINGS.to_dict()}
    model = SpikeAutoencoder(config=config)
    save_model(ae_dir, model.state_dict(), kind="autoencoder", config=config, extra={"data": data})
    return ae_dir


def _config(n_neurons: int = 8) -> SpikeHistoryRunConfig:
    return SpikeHistoryRunConfig(
        name="glm-tiny",
        model=SpikeHistoryConfig(n_neurons=n_neurons, history_bins=5),
        training=TrainingConfig(
            epochs=4,
            lr=0.1,
            warmup_epochs=0,
            lr_horizon_factor=1000.0,
            grad_clip=0.0,
            val_every_epochs=2,
            log_every_steps=1,
        ),
    )


def test_trains_full_batch_and_records_the_ae(tmp_path) -> None:
    ae_dir = _ae_run(tmp_path)
    result = train_spike_history(_config(), home=tmp_path, runtime=RUNTIME, ae_run="ae-tiny")
    assert result.train.steps == 4  # full batch: one step per epoch
    assert result.train.val_loss is not None and result.train.val_loss > 0
    meta = json.loads((result.run_dir / META_FILE).read_text())
    assert meta["kind"] == SpikeHistoryGLM.kind
    assert meta["ae_sha256"] == file_sha256(ae_dir / WEIGHTS_FILE)
    assert meta["data"]["dataset"] == "lorenz" and meta["train_length"] == 32
    model = SpikeHistoryGLM.from_pretrained(result.run_dir)
    counts = model.sample(torch.zeros(2, 32, 8), generator=torch.Generator().manual_seed(0))
    assert counts.shape == (2, 32, 8) and int(counts.max()) <= 5


def test_neuron_count_must_match_the_data(tmp_path) -> None:
    _ae_run(tmp_path)
    with pytest.raises(ConfigError, match="model.n_neurons=8"):
        train_spike_history(_config(n_neurons=5), home=tmp_path, runtime=RUNTIME, ae_run="ae-tiny")
