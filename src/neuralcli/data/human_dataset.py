"""The human speech-BCI trials for LDNS (data-sources §4), stored under processed/human/<hash>/.

    <home>/processed/human/<hash>/human.h5       spikes (n, 512, 128) uint8, mask (n, 512) uint8
    <home>/processed/human/<hash>/settings.yaml  dataset, recipe and every HumanSettings field

Recipe (LDNS): `tx1` threshold crossings in 20 ms bins, the first 128 of 256 channels; sentences
longer than 512 bins (10.24 s) are dropped; each kept sentence is right-padded with zeros to 512
bins and `mask` marks its real bins. Splits: every sentence of the `train/` folder is "train";
the kept sentences of the `test/` folder, in file order, are split sequentially: the first
quarter "val", the rest "test" (LDNS: 8417 / 213 / 640). Day files are read in sorted name order,
not directory order (quirk 15).

Segment columns: trial (index within its day file), split, length (real bins), source_file
("test/t12.2022.05.05.mat"), day (file stem), block (blockIdx), sentence (sentenceText).
Counts above 255 (never seen in tx1) are clipped to fit uint8; attrs count them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from neuralcli.data.sources.willett import (
    BIN_SECONDS,
    FEATURES,
    N_ELECTRODES,
    competition_files,
    read_competition_mat,
)
from neuralcli.data.store import (
    SessionData,
    holds_session,
    processed_dir,
    read_session,
    read_settings,
    write_session,
    write_settings,
)
from neuralcli.errors import ConfigError, DataError

DATASET = "human"
SESSION = "t12"
SESSION_FILE = "human.h5"
# Bump when the recipe's output changes for the same settings, so old folders are not reused.
RECIPE = "ldns-human-v1"
REMEDY = "delete it and run `neuralcli data segment human` again"
MAX_COUNT = 255  # uint8
_STORED_ARRAYS = ("spikes", "mask")

ProgressFn = Callable[[int, int], None]  # (day files read, day files in all)


@dataclass(frozen=True)
class HumanSettings:
    """Every parameter of the human recipe; settings.yaml holds them all (LDNS defaults)."""

    feature: str = "tx1"  # tx1..tx4 (thresholds −3.5..−6.5 × RMS); spikePow is not a count
    n_channels: int = 128  # the first channels of the 256 electrodes
    max_bins: int = 512  # longer sentences are dropped; shorter ones padded to this length
    bin_seconds: float = 0.02  # a whole multiple of the recorded 20 ms: k bins are summed
    val_fraction: float = 0.25  # leading share of the test/ folder's kept sentences -> "val"

    def __post_init__(self) -> None:
        if self.feature not in FEATURES or self.feature == "spikePow":
            raise ConfigError(
                f"feature must be one of tx1, tx2, tx3, tx4 (counts), got {self.feature!r}"
            )
        if not 1 <= self.n_channels <= N_ELECTRODES:
            raise ConfigError(f"n_channels must be in 1..{N_ELECTRODES}, got {self.n_channels}")
        if self.max_bins < 1:
            raise ConfigError(f"max_bins must be >= 1, got {self.max_bins}")
        if not 0.0 <= self.val_fraction <= 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1], got {self.val_fraction}")
        factor = self.bin_seconds / BIN_SECONDS
        if self.bin_seconds <= 0 or not math.isclose(factor, round(factor), abs_tol=1e-9):
            raise ConfigError(
                f"bin_seconds must be a whole multiple of the recorded {BIN_SECONDS} s, got "
                f"{self.bin_seconds}"
            )

    @property
    def bins_per_bin(self) -> int:
        """Recorded 20 ms bins summed into one stored bin."""
        return round(self.bin_seconds / BIN_SECONDS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HumanTrials(NamedTuple):
    """The dataset in memory, before it is written."""

    spikes: np.ndarray  # (n, max_bins, n_channels) uint8, zero-padded on the right
    mask: np.ndarray  # (n, max_bins) uint8, 1 = real bin
    segments: dict[str, np.ndarray]  # trial, split, length, source_file, day, block, sentence
    n_dropped: dict[str, int]  # per source folder: sentences longer than max_bins
    n_clipped: int  # counts above 255 clipped to 255
    source_files: list[str]  # "train/<name>.mat", ... in reading order


def human_settings_dict(settings: HumanSettings | None = None) -> dict[str, Any]:
    """The settings.yaml content for `settings` (the folder hash is taken from it)."""
    settings = settings or HumanSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}


def settings_from_dict(data: dict[str, Any]) -> HumanSettings:
    """HumanSettings back from a settings.yaml mapping (ignores dataset and recipe)."""
    fields = {k: v for k, v in data.items() if k not in ("dataset", "recipe")}
    try:
        return HumanSettings(**fields)
    except TypeError as err:
        raise DataError(f"human settings are invalid: {err}") from None


def human_raw_dir(home: str | os.PathLike) -> Path:
    """`<home>/raw/human`: the archive, MANIFEST.json and the extracted competitionData/."""
    return Path(home) / "raw" / "human"


def human_dir(home: str | os.PathLike, settings: HumanSettings | None = None) -> Path:
    """<home>/processed/human/<hash> for `settings` (default: the LDNS ones)."""
    return processed_dir(home, DATASET, human_settings_dict(settings))


def human_path(home: str | os.PathLike, settings: HumanSettings | None = None) -> Path:
    """Path of the session file for `settings`, whether or not it exists yet."""
    return human_dir(home, settings) / SESSION_FILE


def is_prepared(home: str | os.PathLike, settings: HumanSettings | None = None) -> bool:
    """True when settings.yaml matches and human.h5 opens with spikes and mask."""
    directory = human_dir(home, settings)
    return holds_session(directory, directory / SESSION_FILE, _STORED_ARRAYS, remedy=REMEDY)


def collect_human_trials(
    raw_root: str | os.PathLike,
    settings: HumanSettings,
    *,
    on_progress: ProgressFn | None = None,
) -> HumanTrials:
    """Read the extracted day files under `raw_root` (= raw/human) into padded trial arrays.

    DataError when the train/ or test/ folder has no .mat file, or no sentence fits max_bins.
    """
    raw_root = Path(raw_root)
    folders = {folder: competition_files(raw_root, folder) for folder in ("train", "test")}
    for folder, paths in folders.items():
        if not paths:
            raise DataError(
                f"no .mat files in {raw_root / 'competitionData' / folder}; run "
                "`neuralcli data fetch human` first"
            )
    total = sum(len(paths) for paths in folders.values())
    kept: list[np.ndarray] = []  # (L_i, N) uint8
    rows: dict[str, list[Any]] = {
        k: [] for k in ("trial", "folder", "source_file", "day", "block", "sentence")
    }
    n_dropped = {folder: 0 for folder in folders}
    n_clipped = 0
    source_files: list[str] = []
    done = 0
    for folder, paths in folders.items():
        for path in paths:
            day = read_competition_mat(
                path, feature=settings.feature, n_channels=settings.n_channels
            )
            relative = f"{folder}/{path.name}"
            source_files.append(relative)
            for index, counts in enumerate(day.trials):
                counts = _rebin(counts, settings.bins_per_bin)  # (L, N)
                if counts.shape[0] == 0 or counts.shape[0] > settings.max_bins:
                    n_dropped[folder] += 1  # LDNS: sentences > 512 bins are dropped
                    continue
                n_clipped += int(np.count_nonzero(counts > MAX_COUNT))
                kept.append(np.minimum(counts, MAX_COUNT).astype(np.uint8))
                rows["trial"].append(index)
                rows["folder"].append(folder)
                rows["source_file"].append(relative)
                rows["day"].append(path.stem)
                rows["block"].append(int(day.blocks[index]))
                rows["sentence"].append(day.sentences[index])
            done += 1
            if on_progress is not None:
                on_progress(done, total)
    n = len(kept)
    if n == 0:
        raise DataError(
            f"no sentence under {raw_root} is at most {settings.max_bins} bins long; raise "
            "max_bins or check the extracted files"
        )
    spikes = np.zeros((n, settings.max_bins, settings.n_channels), dtype=np.uint8)
    mask = np.zeros((n, settings.max_bins), dtype=np.uint8)
    lengths = np.empty(n, dtype=np.int64)
    for row, counts in enumerate(kept):
        length = counts.shape[0]
        spikes[row, :length] = counts  # right-padded with zeros (LDNS)
        mask[row, :length] = 1
        lengths[row] = length
    kept.clear()
    folder_of = np.asarray(rows.pop("folder"))
    split = np.where(folder_of == "train", "train", "test").astype(object)
    test_rows = np.flatnonzero(folder_of == "test")
    n_val = int(len(test_rows) * settings.val_fraction)  # LDNS: first quarter, sequentially
    split[test_rows[:n_val]] = "val"
    segments = {
        "trial": np.asarray(rows["trial"], dtype=np.int64),
        "split": split.astype(str),
        "length": lengths,
        "source_file": np.asarray(rows["source_file"], dtype=str),
        "day": np.asarray(rows["day"], dtype=str),
        "block": np.asarray(rows["block"], dtype=np.int64),
        "sentence": np.asarray(rows["sentence"], dtype=object),
    }
    return HumanTrials(spikes, mask, segments, n_dropped, n_clipped, source_files)


def prepare_human(
    home: str | os.PathLike,
    settings: HumanSettings | None = None,
    *,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
) -> Path:
    """Build and store the dataset from the extracted files unless a readable copy exists.

    Returns human.h5's path. settings.yaml is written last, so an interrupted build is redone.
    """
    settings = settings or HumanSettings()
    directory = human_dir(home, settings)
    path = directory / SESSION_FILE
    if not overwrite and is_prepared(home, settings):
        return path
    trials = collect_human_trials(human_raw_dir(home), settings, on_progress=on_progress)
    write_session(
        path,
        arrays={"spikes": trials.spikes, "mask": trials.mask},
        segments=trials.segments,
        attrs={
            "dataset": DATASET,
            "session": SESSION,
            "recipe": RECIPE,
            "feature": settings.feature,
            "bin_seconds": settings.bin_seconds,
            "max_bins": settings.max_bins,
            "n_neurons": settings.n_channels,
            "n_trials": int(trials.spikes.shape[0]),
            "n_dropped_longer": trials.n_dropped,
            "n_clipped_counts": trials.n_clipped,
            "source_files": trials.source_files,
            "file_order": "sorted by name (the original iterates os.listdir)",
        },
        channel_names=[f"ch{i:03d}" for i in range(settings.n_channels)],
        units={
            "spikes": "threshold crossings per bin",
            "mask": "1 = real bin, 0 = padding",
            "length": "bins",
        },
    )
    # Written last: its presence marks the folder complete.
    write_settings(directory, human_settings_dict(settings))
    return path


def load_human(
    home: str | os.PathLike,
    settings: HumanSettings | None = None,
    *,
    arrays: list[str] | None = None,
) -> SessionData:
    """The stored dataset for `settings`: spikes (n, T, N) uint8, mask (n, T) uint8, the
    segment table (trial, split, length, source_file, day, block, sentence) and attrs.

    DataError when it has not been prepared.
    """
    directory = human_dir(home, settings)
    if not (directory / "settings.yaml").is_file():
        raise DataError(
            f"human data with these settings ({directory.name}) is not prepared under {home}; "
            "run `neuralcli data fetch human && neuralcli data segment human` first"
        )
    read_settings(directory, remedy=REMEDY)
    return read_session(directory / SESSION_FILE, arrays, remedy=REMEDY)


def _rebin(counts: np.ndarray, factor: int) -> np.ndarray:
    """(T, N) -> (T // factor, N) by summing `factor` consecutive bins; the remainder is dropped."""
    if factor == 1:
        return counts
    length = counts.shape[0] // factor
    return counts[: length * factor].reshape(length, factor, -1).sum(axis=1)
