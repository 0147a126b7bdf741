"""`neuralcli train ae`: fit the spike autoencoder (LDNS §2, §4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from neuralcli.config.build import dump_yaml
from neuralcli.config.schemas import AutoencoderRunConfig
from neuralcli.data.datasets import SpikeTensorSource
from neuralcli.data.masked_datasets import MaskedSpikeSource
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.pipelines.data import SpikeSplits, load_spike_splits
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter, TrainingProgress
from neuralcli.pipelines.runs import run_dir_for
from neuralcli.runtime.checkpoint import CONFIG_FILE
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.files import atomic_write_text
from neuralcli.runtime.seed import seed_everything
from neuralcli.training.ae_objective import AutoencoderObjective
from neuralcli.training.loop import TrainResult, train


@dataclass
class TrainRunResult:
    run_dir: Path
    train: TrainResult


def prepare_run_dir(
    home: Path, name: str, config_yaml: str, *, resume: bool, is_main: bool
) -> Path:
    """Create runs/<name>/ and write config.yaml; a resumed run must keep its config."""
    run_dir = run_dir_for(home, name)
    if resume:
        existing = run_dir / CONFIG_FILE
        if existing.is_file() and existing.read_text(encoding="utf-8") != config_yaml:
            raise ConfigError(
                f"--resume: the config differs from {existing}; resume with the same preset "
                "and --set options, or start a new run with --name"
            )
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, config_yaml)
    return run_dir


def spike_source(splits: SpikeSplits, split: str) -> SpikeTensorSource | MaskedSpikeSource:
    """Batches of one split: padded trials with their mask when the dataset has variable
    lengths (human; the AE loss then scores real bins only, LDNS §4), plain counts otherwise."""
    spikes = getattr(splits, split)  # (n, T, N)
    mask = splits.conditions_of(split).mask  # (n, T) or None
    if mask is not None:
        return MaskedSpikeSource(spikes, mask)
    return SpikeTensorSource(torch.from_numpy(spikes))


def train_autoencoder(
    config: AutoencoderRunConfig,
    *,
    home: Path,
    runtime: Runtime,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> TrainRunResult:
    """Train the AE on the configured dataset; writes runs/<config.name>/."""
    reporter = reporter or SilentReporter()
    splits = load_spike_splits(home, config.data, reporter=reporter)
    if splits.n_neurons != config.model.n_neurons:
        raise ConfigError(
            f"model.n_neurons is {config.model.n_neurons} but the data have {splits.n_neurons} "
            f"neurons; set --set model.n_neurons={splits.n_neurons}"
        )
    run_dir = prepare_run_dir(
        home, config.name, dump_yaml(config), resume=resume, is_main=runtime.dist.is_main
    )
    seed_everything(runtime.seed, deterministic=runtime.deterministic)
    model = SpikeAutoencoder(config=config.model).to(runtime.device)
    result = train(
        model=model,
        objective=AutoencoderObjective(config=config.loss),
        train_data=spike_source(splits, "train"),
        val_data=spike_source(splits, "val"),
        config=config.training,
        runtime=runtime,
        run_dir=run_dir,
        model_kind=SpikeAutoencoder.kind,
        model_config=config.model,
        resume=resume,
        param_groups=model.parameter_groups(config.training.weight_decay),
        extra_meta={"data": splits.describe(), "bin_seconds": splits.bin_seconds},
        callback=TrainingProgress(reporter, f"train ae {config.name}"),
    )
    return TrainRunResult(run_dir=run_dir, train=result)
