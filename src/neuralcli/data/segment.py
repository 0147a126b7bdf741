"""One `PairedRecording` -> 5 s segments with train/val/test labels (data-sources §9).

The original pipeline cuts each session into non-overlapping 10 s parents (remainder dropped),
for Flint drops parents whose velocity is too variable and re-indexes the survivors, splits the
parents per session with a seeded shuffle, and finally halves every parent into two 5 s
segments with ids 2·parent + half that inherit the parent's split. Spikes are cut with exactly
the same rows as LFP and velocity, so spike and LFP segments share ids (distillation §2).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from neuralcli.data.recording import PairedRecording

# A recording's actual grid may differ slightly from the nominal bin (Makin: 0.004·K/num_steps,
# a few parts in 10^5 above 10 ms); segments count bins, as the original does.
_BIN_TOLERANCE = 0.01


@dataclasses.dataclass(frozen=True)
class SegmentSettings:
    bin_seconds: float = 0.01  # nominal grid; every stream is at 100 Hz (§9)
    parent_seconds: float = 10.0  # split and outlier unit (§9)
    segment_seconds: float = 5.0  # stored segment; must divide parent_seconds
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    split_seed: int = 42  # pandas sample(frac=1, random_state=42) in the original
    velocity_outlier_iqr: float | None = None  # Flint: 1.5 (Q3 + 1.5·IQR); None: keep all

    def __post_init__(self) -> None:
        if self.bin_seconds <= 0:
            raise ValueError(f"bin_seconds must be positive, got {self.bin_seconds}")
        for name in ("parent_seconds", "segment_seconds"):
            bins = getattr(self, name) / self.bin_seconds
            if round(bins) < 1 or abs(bins - round(bins)) > 1e-6:
                raise ValueError(
                    f"{name} = {getattr(self, name)} is not a whole number of "
                    f"{self.bin_seconds} s bins"
                )
        if self.parent_bins % self.segment_bins:
            raise ValueError(
                f"segment_seconds = {self.segment_seconds} must divide "
                f"parent_seconds = {self.parent_seconds}"
            )
        _check_ratios(self.val_ratio, self.test_ratio)
        if self.velocity_outlier_iqr is not None and self.velocity_outlier_iqr < 0:
            raise ValueError(f"velocity_outlier_iqr must be >= 0, got {self.velocity_outlier_iqr}")

    @property
    def parent_bins(self) -> int:
        return round(self.parent_seconds / self.bin_seconds)

    @property
    def segment_bins(self) -> int:
        return round(self.segment_seconds / self.bin_seconds)

    @property
    def segments_per_parent(self) -> int:
        return self.parent_bins // self.segment_bins

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SegmentedSession(NamedTuple):
    """One session cut into segments; row r of every array is segment r of the table."""

    dataset: str
    session: str
    lfp: np.ndarray  # (n_segments, L, n_channels) float32
    spikes: np.ndarray  # (n_segments, L, n_units) uint8
    velocity: np.ndarray  # (n_segments, L, 2) float32
    # Equal-length columns, one row per segment, in segment_id order:
    #   segment_id (int64) parent_id·k + half, k = parent/segment ratio (§9)
    #   parent_id (int64) parent index after outlier removal, 0..N-1
    #   original_parent (int64) parent index before removal = its time position (quirk 10)
    #   start_bin (int64) first bin in the recording's grid; start_time (float64) its time, s
    #   split (str) train/val/test, inherited from the parent
    segments: dict[str, np.ndarray]
    channel_names: list[str]  # (n_channels,)
    unit_names: list[str]  # (n_units,)
    bin_seconds: float  # the recording's actual grid spacing
    settings: SegmentSettings
    parents_total: int  # whole parents in the recording, before outlier removal
    outliers_dropped: int  # parents dropped by the velocity outlier filter
    remainder_bins: int  # bins after the last whole parent, dropped (§9)


def split_labels(
    n_parents: int, *, val_ratio: float = 0.1, test_ratio: float = 0.1, seed: int = 42
) -> np.ndarray:
    """Split label of each parent, reproducing the original per-session split (§9, quirk 7).

    The original shuffles the parent rows with pandas `sample(frac=1, random_state=seed)`,
    which is `np.random.RandomState(seed).permutation(n)`, then labels shuffled positions with
    label-inclusive `.loc`: 0..val_size-1 val, val_size..val_size+test_size test (one extra),
    the rest train; val_size = int(val_ratio·n), test_size = int(test_ratio·n).

    Tiny sessions follow the same rule: for n < 10 (ratios 0.1) there is no val parent and
    exactly one test parent, so a one-parent session is test only; `.loc` stops at the last
    row, so test never overflows. Our one deviation: test_ratio = 0 gives no test parent (the
    original would still label one). Returns a str array (n_parents,) in parent order.
    """
    if n_parents < 0:
        raise ValueError(f"n_parents must be >= 0, got {n_parents}")
    _check_ratios(val_ratio, test_ratio)
    val_size = int(val_ratio * n_parents)
    test_size = int(test_ratio * n_parents)
    by_position = np.full(n_parents, "train", dtype="<U5")
    by_position[:val_size] = "val"
    # `.loc` includes its end label: one extra test row. A zero test_ratio (never used by the
    # original) means no test rows at all, so the extra row is not added then.
    test_stop = val_size + test_size + (1 if test_ratio > 0 else 0)
    by_position[val_size:test_stop] = "test"
    order = np.random.RandomState(seed).permutation(n_parents)  # position -> parent
    labels = np.empty(n_parents, dtype="<U5")
    labels[order] = by_position
    return labels


def velocity_outliers(velocity_segments: np.ndarray, iqr: float) -> np.ndarray:
    """Segments whose velocity std exceeds Q3 + iqr·(Q3 − Q1) over all segments (§9, Flint).

    velocity_segments: (n, L, 2); the std is over time and both dimensions together.
    Quartiles are numpy's linear-interpolation percentiles. Returns bool (n,), True = drop.
    """
    n = velocity_segments.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    spread = velocity_segments.reshape(n, -1).std(axis=1, dtype=np.float64)  # (n,)
    q1, q3 = np.percentile(spread, [25, 75])
    return spread > q3 + iqr * (q3 - q1)


def segment_recording(recording: PairedRecording, settings: SegmentSettings) -> SegmentedSession:
    """Cut a session into `settings.segment_seconds` segments with inherited parent splits.

    Returns arrays (n_segments, L, ·) with L = segment_seconds / bin_seconds and the segment
    table described on `SegmentedSession`. A recording shorter than one parent gives zero rows.

    The velocity outlier filter sees the recording's velocity, which the original has z-scored
    over the whole session by then (train-only statistics: see
    `paired_processing.normalise_and_segment`).
    """
    recording.check()
    nominal = settings.bin_seconds
    if abs(recording.bin_seconds - nominal) > _BIN_TOLERANCE * nominal:
        raise ValueError(
            f"{recording.session}: grid spacing {recording.bin_seconds} s is not the "
            f"{nominal} s the segment settings expect"
        )
    parent_bins, segment_bins = settings.parent_bins, settings.segment_bins
    per_parent = settings.segments_per_parent
    parents_total = recording.n_bins // parent_bins
    used = parents_total * parent_bins

    if settings.velocity_outlier_iqr is None:
        kept = np.arange(parents_total)
    else:
        velocity = recording.velocity[:used].reshape(parents_total, parent_bins, 2)
        kept = np.flatnonzero(~velocity_outliers(velocity, settings.velocity_outlier_iqr))
    n_parents = kept.size
    parent_split = split_labels(
        n_parents,
        val_ratio=settings.val_ratio,
        test_ratio=settings.test_ratio,
        seed=settings.split_seed,
    )

    half = np.tile(np.arange(per_parent), n_parents)  # (n_segments,)
    parent_id = np.repeat(np.arange(n_parents), per_parent)  # (n_segments,)
    original_parent = kept[parent_id]  # (n_segments,)
    # Row of each segment among all whole segments of the recording, in time order.
    source_rows = original_parent * per_parent + half  # (n_segments,)
    start_bin = source_rows * segment_bins

    def cut(array: np.ndarray, dtype: type) -> np.ndarray:
        shape = (parents_total * per_parent, segment_bins, array.shape[1])
        whole = array[:used].reshape(shape)  # (S, L, ·)
        return np.ascontiguousarray(whole[source_rows], dtype=dtype)

    return SegmentedSession(
        dataset=recording.dataset,
        session=recording.session,
        lfp=cut(recording.lfp, np.float32),
        spikes=cut(recording.spikes, np.uint8),
        velocity=cut(recording.velocity, np.float32),
        segments={
            "segment_id": (parent_id * per_parent + half).astype(np.int64),
            "parent_id": parent_id.astype(np.int64),
            "original_parent": original_parent.astype(np.int64),
            "start_bin": start_bin.astype(np.int64),
            "start_time": recording.times[start_bin].astype(np.float64),
            "split": parent_split[parent_id],
        },
        channel_names=list(recording.channel_names),
        unit_names=list(recording.unit_names),
        bin_seconds=float(recording.bin_seconds),
        settings=settings,
        parents_total=int(parents_total),
        outliers_dropped=int(parents_total - n_parents),
        remainder_bins=int(recording.n_bins - used),
    )


def _check_ratios(val_ratio: float, test_ratio: float) -> None:
    if val_ratio < 0 or test_ratio < 0 or val_ratio + test_ratio > 1:
        raise ValueError(
            f"val_ratio ({val_ratio}) and test_ratio ({test_ratio}) must be >= 0 and sum to <= 1"
        )
