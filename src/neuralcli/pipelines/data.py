"""Data for the pipelines: training splits of a configured dataset, and spike arrays from
whatever a user names (a dataset split, an .npz/.nwb file, a run directory)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.datasets import load_split
from neuralcli.data.lorenz_dataset import (
    is_prepared,
    lorenz_settings_dict,
    prepare_lorenz,
    settings_from_dict,
)
from neuralcli.data.registry import DATASETS, parse_dataset_ref
from neuralcli.data.samples import read_samples_nwb, read_spike_array
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.store import settings_hash
from neuralcli.errors import DataError
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter

LORENZ_BIN_SECONDS = 1.0  # Lorenz time is in bins (LDNS §11: fps = 1)


@dataclass
class SpikeSplits:
    """Train/val/test spike counts (n, T, N) of one processed dataset variant."""

    dataset: str
    settings: dict[str, Any]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    bin_seconds: float

    @property
    def n_neurons(self) -> int:
        return int(self.train.shape[-1])

    def describe(self) -> dict[str, Any]:
        """What model.json records so later stages can find the same data."""
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "settings_hash": settings_hash(lorenz_settings_dict(settings_from_dict(self.settings))),
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "n_test": int(self.test.shape[0]),
            "length": int(self.train.shape[1]),
        }


def ensure_lorenz(home: Path, settings: LorenzSettings, reporter: ProgressReporter) -> None:
    """Simulate the Lorenz variant if it is not on disk yet (it is synthetic and cheap)."""
    if is_prepared(home, settings):
        return
    reporter.message(
        f"simulating Lorenz data ({settings.n_trials} trials x {settings.length} bins)"
    )
    task = "simulate lorenz"
    reporter.start(task, settings.n_trials)
    prepare_lorenz(home, settings, on_progress=lambda done, total: reporter.update(task, done))
    reporter.finish(task)


def load_spike_splits(
    home: Path, data_config: Any, *, reporter: ProgressReporter | None = None
) -> SpikeSplits:
    """Train/val/test spikes of `data_config` (a config.schemas.DataConfig)."""
    reporter = reporter or SilentReporter()
    if data_config.dataset != "lorenz":
        raise DataError(f"dataset {data_config.dataset!r} cannot be trained on yet")
    settings = data_config.lorenz
    ensure_lorenz(home, settings, reporter)
    arrays = {split: load_split(home, settings, split) for split in ("train", "val", "test")}
    return SpikeSplits(
        dataset="lorenz",
        settings=settings.to_dict(),
        bin_seconds=LORENZ_BIN_SECONDS,
        **arrays,
    )


@dataclass
class LoadedSpikes:
    """Spike counts (n, T, N) from any source, with where they came from."""

    spikes: np.ndarray
    bin_seconds: float | None
    label: str
    origin: Path | None = None  # the file, when the spikes came from one
    metadata: dict[str, Any] = field(default_factory=dict)


def load_spikes(ref: str | Path, home: Path, *, prefer_data: dict | None = None) -> LoadedSpikes:
    """Spikes from `ref`: `dataset:split` (e.g. lorenz:test), an .npz or .nwb file, or a run
    directory holding samples.npz. `prefer_data` (a samples file's `data` metadata) picks the
    processed variant that the sampled model was trained on."""
    text = str(ref)
    dataset, _, split = text.partition(":")
    if split and dataset in DATASETS and not Path(text).exists():
        return _load_dataset_split(text, home, prefer_data)
    path = Path(text).expanduser()
    if path.is_dir():
        candidate = path / "samples.npz"
        if not candidate.is_file():
            raise DataError(
                f"{path} holds no samples.npz; run `neuralcli sample --model {path}` first"
            )
        path = candidate
    if path.suffix == ".nwb":
        array = read_samples_nwb(path)
        return LoadedSpikes(array.spikes, array.bin_seconds, str(path), origin=path)
    array = read_spike_array(path)
    return LoadedSpikes(
        array.spikes, array.bin_seconds, str(path), origin=path, metadata=_npz_metadata(path)
    )


def _npz_metadata(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as archive:
        if "metadata_json" not in archive.files:
            return {}
        try:
            return json.loads(str(archive["metadata_json"].item()))
        except (ValueError, TypeError):
            return {}


def _load_dataset_split(ref: str, home: Path, prefer_data: dict | None) -> LoadedSpikes:
    dataset, split = parse_dataset_ref(ref)
    if split is None:
        raise DataError(f"{ref!r}: name a split, e.g. {dataset}:test")
    source: str | LorenzSettings = ref
    if prefer_data and prefer_data.get("dataset") == dataset == "lorenz":
        preferred = settings_from_dict(prefer_data["settings"])
        if is_prepared(home, preferred):
            source = preferred
    spikes = load_split(home, source, split)
    return LoadedSpikes(spikes, LORENZ_BIN_SECONDS, ref)
