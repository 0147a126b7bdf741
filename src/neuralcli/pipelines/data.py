"""Data for the pipelines: training splits of a configured dataset, and spike arrays from
whatever a user names (a dataset split, an .npz/.nwb file, a run directory)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.registry import DATASETS, parse_dataset_ref, resolve_variant
from neuralcli.data.samples import read_samples_nwb, read_spike_array
from neuralcli.data.store import read_session, settings_hash
from neuralcli.data.trial_datasets import (
    LORENZ_BIN_SECONDS,
    TRIAL_DATASETS,
    TrialConditions,
    TrialDataset,
    get_trial_dataset,
    split_arrays,
)
from neuralcli.errors import DataError
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.runs import home_candidates

__all__ = [
    "LORENZ_BIN_SECONDS",
    "LoadedSpikes",
    "SpikeSplits",
    "TrialConditions",
    "load_spike_splits",
    "load_spikes",
]

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class SpikeSplits:
    """Train/val/test spike counts (n, T, N) of one processed dataset variant, with the
    behaviour of each split (`conditions`, keyed train / val / test)."""

    dataset: str
    settings: dict[str, Any]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    bin_seconds: float
    conditions: dict[str, TrialConditions] = field(default_factory=dict)

    @property
    def n_neurons(self) -> int:
        return int(self.train.shape[-1])

    def conditions_of(self, split: str) -> TrialConditions:
        return self.conditions.get(split) or TrialConditions()

    def describe(self) -> dict[str, Any]:
        """What model.json records so later stages can find the same data."""
        info = get_trial_dataset(self.dataset)
        settings = info.settings_from_dict(self.settings)
        return {
            "dataset": self.dataset,
            "settings": self.settings,
            "settings_hash": settings_hash(info.settings_dict(settings)),
            "n_train": int(self.train.shape[0]),
            "n_val": int(self.val.shape[0]),
            "n_test": int(self.test.shape[0]),
            "length": int(self.train.shape[1]),
        }


def ensure_prepared(
    home: Path, info: TrialDataset, settings: Any, reporter: ProgressReporter
) -> None:
    """Simulate a synthetic dataset that is not on disk yet; DataError for a missing download."""
    if info.is_prepared(home, settings):
        return
    if info.simulate is None:
        raise DataError(
            f"{info.name} with these settings is not prepared under {home}; run `{info.missing}`"
        )
    reporter.message(f"simulating {info.name} data (first use of these settings)")
    task = f"simulate {info.name}"
    started = False

    def progress(done: int, total: int) -> None:
        nonlocal started
        if not started:  # the simulator knows the total; the bar starts at its first report
            reporter.start(task, total)
            started = True
        reporter.update(task, done)

    info.simulate(home, settings, on_progress=progress)
    if started:
        reporter.finish(task)


def load_spike_splits(
    home: Path, data_config: Any, *, reporter: ProgressReporter | None = None
) -> SpikeSplits:
    """Train/val/test spikes and conditions of `data_config` (a config.schemas.DataConfig)."""
    reporter = reporter or SilentReporter()
    info = get_trial_dataset(data_config.dataset)
    settings = data_config.settings()
    ensure_prepared(home, info, settings, reporter)
    session = info.load(home, settings, arrays=list(info.arrays))
    arrays, conditions = {}, {}
    for split in SPLIT_NAMES:
        arrays[split], conditions[split] = split_arrays(session, split)
    return SpikeSplits(
        dataset=info.name,
        settings=settings.to_dict(),
        bin_seconds=info.bin_seconds(session),
        conditions=conditions,
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
    conditions: TrialConditions = field(default_factory=TrialConditions)


def load_spikes(ref: str | Path, home: Path, *, prefer_data: dict | None = None) -> LoadedSpikes:
    """Spikes from `ref`: `dataset:split` (e.g. lorenz:test), an .npz or .nwb file, or a run
    directory holding samples.npz. Paths are looked up as run directories are (`home_candidates`:
    as given, then under the home directory, then under <home>/runs), so
    `runs/diffusion-lorenz/samples.npz` works from any working directory. `prefer_data` (a
    samples file's `data` metadata) picks the processed variant the sampled model was
    trained on."""
    text = str(ref)
    dataset, _, split = text.partition(":")
    if split and dataset in DATASETS and not Path(text).exists():
        return _load_dataset_split(text, home, prefer_data)
    candidates = home_candidates(text, home)
    path = next((candidate for candidate in candidates if candidate.exists()), None)
    if path is None:
        looked = ", ".join(str(candidate) for candidate in candidates)
        raise DataError(
            f"{text}: no such file or folder (looked in {looked}); pass an .npz holding a "
            "'spikes' array (trials, time, neurons), a samples .nwb, a run folder holding "
            "samples.npz, or dataset:split (e.g. lorenz:test)"
        )
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
        array.spikes,
        array.bin_seconds,
        str(path),
        origin=path,
        metadata=_npz_metadata(path),
        conditions=_npz_conditions(path),
    )


def _npz_metadata(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as archive:
        if "metadata_json" not in archive.files:
            return {}
        try:
            return json.loads(str(archive["metadata_json"].item()))
        except (ValueError, TypeError):
            return {}


# Optional arrays of a samples .npz that hold the condition of each sample.
_NPZ_CONDITIONS = {"angle": "condition_angle", "velocity": "condition_velocity", "mask": "mask"}


def _npz_conditions(path: Path) -> TrialConditions:
    if path.suffix != ".npz":
        return TrialConditions()
    with np.load(path, allow_pickle=False) as archive:
        found = {
            name: np.asarray(archive[key])
            for name, key in _NPZ_CONDITIONS.items()
            if key in archive.files
        }
    return TrialConditions(
        angle=found["angle"].astype(np.float32) if "angle" in found else None,
        velocity=found["velocity"].astype(np.float32) if "velocity" in found else None,
        mask=found["mask"].astype(np.uint8) if "mask" in found else None,
    )


def _load_dataset_split(ref: str, home: Path, prefer_data: dict | None) -> LoadedSpikes:
    """`dataset:split` -> spikes and conditions; `prefer_data` (a model's "data" record) picks
    its exact processed variant when that is on disk, else the dataset's default variant."""
    dataset, split = parse_dataset_ref(ref)
    if split is None:
        raise DataError(f"{ref!r}: name a split, e.g. {dataset}:test")
    if dataset not in TRIAL_DATASETS:
        raise DataError(
            f"{ref!r}: {dataset} holds sessions, not LDNS trials; use one of "
            f"{', '.join(TRIAL_DATASETS)}"
        )
    info = TRIAL_DATASETS[dataset]
    session = None
    if prefer_data and prefer_data.get("dataset") == dataset:
        preferred = info.settings_from_dict(prefer_data["settings"])
        if info.is_prepared(home, preferred):
            session = info.load(home, preferred, arrays=list(info.arrays))
    if session is None:
        files = resolve_variant(home, dataset).files
        if not files:
            raise DataError(f"{dataset} has no session file under {home}; run `{info.missing}`")
        session = read_session(files[0], list(info.arrays), remedy=DATASETS[dataset].remedy)
    spikes, conditions = split_arrays(session, split)
    return LoadedSpikes(spikes, info.bin_seconds(session), ref, conditions=conditions)
