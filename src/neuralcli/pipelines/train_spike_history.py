"""`neuralcli train spike-history`: fit the spike-history GLM on a frozen AE's rates (LDNS §5).

The AE's training data are reloaded from its model.json, its (unmasked) rates on the train and
val trials become the GLM's rate input, and the GLM is trained teacher-forced through the one
training loop. model.json records the AE's source and the SHA-256 of its weights file, so a
sampler can check that diffusion samples are decoded by the same AE the GLM was fit on (a
diffusion run's autoencoder/ copy has the same bytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch

from neuralcli.config.build import dump_yaml
from neuralcli.config.schemas import SpikeHistoryRunConfig
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.models.spike_history import SpikeHistoryGLM, log_rates_of
from neuralcli.pipelines.data import load_spike_splits
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter, TrainingProgress
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.train_ae import TrainRunResult, prepare_run_dir
from neuralcli.pipelines.train_diffusion import data_config_from_meta
from neuralcli.runtime.checkpoint import WEIGHTS_FILE, read_model_meta
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.seed import seed_everything
from neuralcli.training.loop import train
from neuralcli.training.spike_history_objective import SpikeHistoryObjective, SpikeHistorySource

__all__ = ["SpikeHistoryRunConfig", "autoencoder_log_rates", "file_sha256", "train_spike_history"]


@torch.no_grad()
def autoencoder_log_rates(
    autoencoder: SpikeAutoencoder,
    spikes: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """log of the AE's rates on unmasked input: (n, T, N) counts -> (n, T, N) float32.

    Rates are floored at models.spike_history.MIN_RATE before the log.
    """
    autoencoder.eval()
    out = np.empty(spikes.shape, np.float32)
    for start in range(0, spikes.shape[0], batch_size):
        batch = torch.from_numpy(spikes[start : start + batch_size]).to(device, torch.float32)
        rates = autoencoder(batch).rates  # (B, T, N)
        out[start : start + batch.shape[0]] = log_rates_of(rates).cpu().numpy()
    return out


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def train_spike_history(
    config: SpikeHistoryRunConfig,
    *,
    home: Path,
    runtime: Runtime,
    ae_run: str | Path,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> TrainRunResult:
    """Fit the GLM on the AE's training data and log rates; writes runs/<config.name>/."""
    reporter = reporter or SilentReporter()
    ae_dir = resolve_run_dir(ae_run, home)
    ae_meta = read_model_meta(ae_dir, expected_kind=SpikeAutoencoder.kind)
    if not ae_meta.get("data"):
        raise ConfigError(
            f"{ae_dir} records no training data in model.json; pass an AE trained with "
            "`neuralcli train ae`"
        )
    # The AE's neuron count is the data's: checked before the data are loaded.
    n_neurons = (ae_meta.get("config") or {}).get("n_neurons")
    if n_neurons != config.model.n_neurons:
        raise ConfigError(
            f"model.n_neurons is {config.model.n_neurons} but the AE in {ae_dir} models "
            f"{n_neurons} neurons; set --set model.n_neurons={n_neurons}"
        )
    splits = load_spike_splits(home, data_config_from_meta(ae_meta), reporter=reporter)
    if splits.train.shape[1] <= config.model.history_bins:
        raise ConfigError(
            f"trials have {splits.train.shape[1]} bins but the GLM needs more than "
            f"model.history_bins={config.model.history_bins}; lower model.history_bins"
        )

    autoencoder = SpikeAutoencoder.from_pretrained(ae_dir, device=runtime.device)
    reporter.message(f"computing AE rates of {splits.train.shape[0]} train trials")
    rates = dict(device=runtime.device, batch_size=config.rates_batch_size)
    train_log_rates = autoencoder_log_rates(autoencoder, splits.train, **rates)
    val_log_rates = autoencoder_log_rates(autoencoder, splits.val, **rates)
    del autoencoder

    training = config.training
    if config.full_batch:
        training = dataclasses.replace(training, batch_size=int(splits.train.shape[0]))
    run_dir = prepare_run_dir(
        home, config.name, dump_yaml(config), resume=resume, is_main=runtime.dist.is_main
    )
    seed_everything(runtime.seed, deterministic=runtime.deterministic)
    model = SpikeHistoryGLM(config=config.model).to(runtime.device)
    val_data = None
    if splits.val.shape[0] > 0:
        val_data = SpikeHistorySource(splits.val, val_log_rates, device=runtime.device)
    result = train(
        model=model,
        objective=SpikeHistoryObjective(
            history_bins=config.model.history_bins, max_count=config.model.max_count
        ),
        train_data=SpikeHistorySource(splits.train, train_log_rates, device=runtime.device),
        val_data=val_data,
        config=training,
        runtime=runtime,
        run_dir=run_dir,
        model_kind=SpikeHistoryGLM.kind,
        model_config=config.model,
        resume=resume,
        extra_meta={
            "ae_source": str(ae_dir),
            "ae_sha256": file_sha256(ae_dir / WEIGHTS_FILE),
            "ae_step": ae_meta.get("step"),
            "data": ae_meta.get("data"),
            "bin_seconds": splits.bin_seconds,
            "train_length": int(splits.train.shape[1]),
        },
        callback=TrainingProgress(reporter, f"train spike-history {config.name}"),
    )
    return TrainRunResult(run_dir=run_dir, train=result)
