"""Paired spike/LFP/velocity session files, and the torch Dataset that serves them.

A paired session file is a store session file (neuralcli.data.store) with

    /arrays/lfp        (n_segments, L, n_channels) float32   units "z-score"
    /arrays/spikes     (n_segments, L, n_units)    uint8     units "count"
    /arrays/velocity   (n_segments, L, 2)          float32   units "z-score"
    /segments/...      segment_id, parent_id, original_parent, start_bin, start_time, split
    /channel_names     the LFP channels
    attrs              kind "paired", dataset, session, bin_seconds, segment_seconds,
                       n_channels, n_units, unit_names, parents_total, outliers_dropped,
                       remainder_bins, segment_settings, plus the caller's attrs

Unit names live in the attrs (a JSON list) rather than under /arrays, so that every array
there has one row per segment.

Sessions differ in channel and unit counts; `collate_paired` pads both to the batch maximum
with zeros and returns the true counts, and `SessionBatchSampler` draws each batch from one
session for models with per-session read-ins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from neuralcli.data.segment import SegmentedSession
from neuralcli.data.store import SPLITS, SessionReader, write_session
from neuralcli.errors import DataError

PAIRED_KIND = "paired"
PAIRED_ARRAYS = ("lfp", "spikes", "velocity")
PAIRED_UNITS = {"lfp": "z-score", "spikes": "count", "velocity": "z-score", "start_time": "s"}


class PairedSummary(NamedTuple):
    """What `neuralcli data info` shows for one paired session file."""

    path: Path
    dataset: str
    session: str
    n_channels: int
    n_units: int
    n_segments: dict[str, int]  # per split: train, val, test
    segment_seconds: float
    duration_seconds: float  # all stored segments together
    outliers_dropped: int
    channel_names: list[str]
    unit_names: list[str]


class PairedItem(NamedTuple):
    """One 5 s segment of one session."""

    spikes: torch.Tensor  # (L, U) uint8 counts; collate_paired makes them int64
    lfp: torch.Tensor  # (L, C) float32
    velocity: torch.Tensor  # (L, 2) float32
    session: int  # index into PairedDataset.sessions
    segment_id: int


class PairedBatch(NamedTuple):
    """Segments of possibly different sessions, channels and units zero-padded to the maximum."""

    spikes: torch.Tensor  # (B, L, U_max) int64
    lfp: torch.Tensor  # (B, L, C_max) float32
    velocity: torch.Tensor  # (B, L, 2) float32
    n_channels: torch.Tensor  # (B,) int64 true channel count of each item
    n_units: torch.Tensor  # (B,) int64 true unit count of each item
    session: torch.Tensor  # (B,) int64 index into PairedDataset.sessions
    segment_id: torch.Tensor  # (B,) int64


def write_paired_session(
    path: str | os.PathLike,
    segmented: SegmentedSession,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write one segmented session as a paired session file (atomically); returns its path.

    `attrs` (JSON-serialisable) are stored next to the file's own; they may not reuse the
    names of the attrs listed in this module's docstring.
    """
    own = {
        "kind": PAIRED_KIND,
        "dataset": segmented.dataset,
        "session": segmented.session,
        "bin_seconds": float(segmented.bin_seconds),
        "segment_seconds": float(segmented.settings.segment_seconds),
        "n_channels": len(segmented.channel_names),
        "n_units": len(segmented.unit_names),
        "unit_names": [str(name) for name in segmented.unit_names],
        "parents_total": int(segmented.parents_total),
        "outliers_dropped": int(segmented.outliers_dropped),
        "remainder_bins": int(segmented.remainder_bins),
        "segment_settings": segmented.settings.to_dict(),
    }
    clashes = sorted(set(attrs or {}) & set(own))
    if clashes:
        raise ValueError(f"attrs {clashes} are set by write_paired_session itself")
    return write_session(
        path,
        arrays={name: getattr(segmented, name) for name in PAIRED_ARRAYS},
        segments=segmented.segments,
        attrs={**dict(attrs or {}), **own},
        channel_names=segmented.channel_names,
        units=PAIRED_UNITS,
    )


def read_paired_summary(path: str | os.PathLike) -> PairedSummary:
    """Counts and names of one paired session file, without reading its arrays."""
    with SessionReader(path) as reader:
        _check_paired(reader)
        split = reader.segments["split"]
        n_total, length = reader.shape("lfp")[:2]
        bin_seconds = float(reader.attrs["bin_seconds"])
        return PairedSummary(
            path=Path(path),
            dataset=str(reader.attrs["dataset"]),
            session=str(reader.attrs["session"]),
            n_channels=int(reader.attrs["n_channels"]),
            n_units=int(reader.attrs["n_units"]),
            n_segments={name: int(np.count_nonzero(split == name)) for name in SPLITS},
            segment_seconds=float(reader.attrs["segment_seconds"]),
            duration_seconds=n_total * length * bin_seconds,
            outliers_dropped=int(reader.attrs["outliers_dropped"]),
            channel_names=list(reader.channel_names or []),
            unit_names=[str(name) for name in reader.attrs["unit_names"]],
        )


class PairedDataset(Dataset):
    """Segments of one split (or all) across paired session files, read lazily.

    One file per session. `sessions` picks and orders sessions by name; without it every file
    is used, in the given order. Session indices (`PairedItem.session`) follow `self.sessions`
    and do not depend on `split`, so train and val datasets built from the same arguments
    agree. Files are opened on first access in each process (DataLoader workers included) and
    kept open; the dataset pickles without open handles.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike],
        *,
        split: str | None,
        sessions: Sequence[str] | None = None,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        by_session: dict[str, tuple[Path, SessionTable]] = {}
        for file in files:
            table = _read_table(Path(file))
            if table.session in by_session:
                raise DataError(
                    f"session {table.session!r} is in both {by_session[table.session][0]} and "
                    f"{file}; pass one file per session"
                )
            by_session[table.session] = (Path(file), table)
        if sessions is None:
            names = list(by_session)
        else:
            names = list(sessions)
            missing = [name for name in names if name not in by_session]
            if missing:
                raise DataError(
                    f"no session file for {missing}; available sessions: "
                    f"{', '.join(by_session) or 'none'}"
                )
            if len(set(names)) != len(names):
                raise DataError(f"sessions lists a session twice: {names}")
        self.split = split
        self.sessions: list[str] = names
        self.files: list[Path] = [by_session[name][0] for name in names]
        tables = [by_session[name][1] for name in names]
        self.channel_names: list[list[str]] = [table.channel_names for table in tables]
        self.unit_names: list[list[str]] = [table.unit_names for table in tables]
        self.segment_bins: int | None = tables[0].segment_bins if tables else None
        if len({table.segment_bins for table in tables}) > 1:
            raise DataError("the session files hold segments of different lengths")

        picked = [
            np.flatnonzero(table.split == split) if split is not None else np.arange(table.size)
            for table in tables
        ]
        sizes = [rows.size for rows in picked]
        self.item_sessions = np.repeat(np.arange(len(names)), sizes).astype(np.int64)  # (n,)
        self.item_rows = np.concatenate([np.zeros(0, np.int64), *picked]).astype(np.int64)
        ids = [table.segment_id[rows] for table, rows in zip(tables, picked, strict=True)]
        self.item_segment_ids = np.concatenate([np.zeros(0, np.int64), *ids]).astype(np.int64)
        self._readers: dict[int, SessionReader] = {}
        self._reader_pid: int | None = None

    def __len__(self) -> int:
        return int(self.item_rows.size)

    def __getitem__(self, index: int) -> PairedItem:
        return self.items([index])[0]

    def items(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> list[PairedItem]:
        """Items at `indices`, in that order; rows of one file are read together."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"index out of range for {n} items")
        indices = np.where(indices < 0, indices + n, indices)
        out: list[PairedItem | None] = [None] * indices.size
        sessions = self.item_sessions[indices]
        for session in np.unique(sessions):
            where = np.flatnonzero(sessions == session)
            rows = self.item_rows[indices[where]]
            reader = self._reader(int(session))
            lfp = reader.read("lfp", rows)  # (b, L, C)
            spikes = reader.read("spikes", rows)  # (b, L, U)
            velocity = reader.read("velocity", rows)  # (b, L, 2)
            for k, position in enumerate(where):
                out[position] = PairedItem(
                    spikes=torch.from_numpy(np.ascontiguousarray(spikes[k])),
                    lfp=torch.from_numpy(np.ascontiguousarray(lfp[k], dtype=np.float32)),
                    velocity=torch.from_numpy(np.ascontiguousarray(velocity[k], dtype=np.float32)),
                    session=int(session),
                    segment_id=int(self.item_segment_ids[indices[position]]),
                )
        return out  # type: ignore[return-value]

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next access)."""
        if self._reader_pid == os.getpid():
            for reader in self._readers.values():
                reader.close()
        self._readers = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"] = {}
        state["_reader_pid"] = None
        return state

    def _reader(self, session: int) -> SessionReader:
        if self._reader_pid != os.getpid():
            # A forked worker inherits the parent's handles; HDF5 handles must not be shared
            # across processes, so the child forgets them and opens its own.
            self._readers = {}
            self._reader_pid = os.getpid()
        reader = self._readers.get(session)
        if reader is None:
            reader = SessionReader(self.files[session])
            self._readers[session] = reader
        return reader


def collate_paired(items: Sequence[PairedItem]) -> PairedBatch:
    """Stack items, zero-padding channels and units to the batch maximum.

    Returns spikes int64 (B, L, U_max), lfp float32 (B, L, C_max), velocity (B, L, 2) and the
    true per-item counts n_channels, n_units (B,) with session and segment_id (B,).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    length = items[0].lfp.shape[0]
    n_channels = torch.tensor([item.lfp.shape[1] for item in items], dtype=torch.int64)  # (B,)
    n_units = torch.tensor([item.spikes.shape[1] for item in items], dtype=torch.int64)  # (B,)
    batch = len(items)
    spikes = torch.zeros(batch, length, int(n_units.max()), dtype=torch.int64)  # (B, L, U)
    lfp = torch.zeros(batch, length, int(n_channels.max()), dtype=torch.float32)  # (B, L, C)
    for b, item in enumerate(items):
        spikes[b, :, : item.spikes.shape[1]] = item.spikes
        lfp[b, :, : item.lfp.shape[1]] = item.lfp
    return PairedBatch(
        spikes=spikes,
        lfp=lfp,
        velocity=torch.stack([item.velocity for item in items]),  # (B, L, 2)
        n_channels=n_channels,
        n_units=n_units,
        session=torch.tensor([item.session for item in items], dtype=torch.int64),
        segment_id=torch.tensor([item.segment_id for item in items], dtype=torch.int64),
    )


class SessionBatchSampler(Sampler):
    """Batches of dataset indices, each from a single session (for per-session read-ins).

    Every epoch shuffles the items within each session, cuts them into batches, and shuffles
    the order of all batches, from `numpy.random.default_rng([seed, epoch])`. The epoch
    advances by one after each full pass; `set_epoch` sets it (e.g. when resuming).
    """

    def __init__(
        self,
        item_sessions: PairedDataset | np.ndarray | Sequence[int],
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
    ) -> None:
        if isinstance(item_sessions, PairedDataset):
            item_sessions = item_sessions.item_sessions
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.item_sessions = np.asarray(item_sessions, dtype=np.int64)  # (n,)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        sizes = np.unique(self.item_sessions, return_counts=True)[1]
        if self.drop_last:
            return int(np.sum(sizes // self.batch_size))
        return int(np.sum(-(-sizes // self.batch_size)))

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        batches: list[list[int]] = []
        for session in np.unique(self.item_sessions):
            members = np.flatnonzero(self.item_sessions == session)
            if self.shuffle:
                members = rng.permutation(members)
            for first in range(0, members.size, self.batch_size):
                chunk = members[first : first + self.batch_size]
                if chunk.size == self.batch_size or not self.drop_last:
                    batches.append(chunk.tolist())
        order = rng.permutation(len(batches)) if self.shuffle else range(len(batches))
        for position in order:
            yield batches[position]


class PairedBatchSource:
    """`BatchSource` for the training loop: `batch(indices)` -> collated PairedBatch."""

    def __init__(self, dataset: PairedDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: torch.Tensor) -> PairedBatch:
        """Items at `indices` (int64, CPU) collated: PairedBatch of (B, L, ·) tensors."""
        return collate_paired(self.dataset.items(indices))


class PairedMemorySource:
    """`BatchSource` that reads every item of `dataset` into memory once (as torch tensors).

    For datasets that fit in RAM (synthetic-reach: tens of MB), a batch is then a gather and a
    pad, with no HDF5 reads and decompression per step. `nbytes` tells callers the cost first.
    """

    def __init__(self, dataset: PairedDataset) -> None:
        self.dataset = dataset
        self.items = dataset.items(np.arange(len(dataset))) if len(dataset) else []
        dataset.close()

    @staticmethod
    def nbytes(dataset: PairedDataset) -> int:
        """Bytes the items of `dataset` take in memory (lfp f32, spikes u8, velocity f32)."""
        total = 0
        length = dataset.segment_bins or 0
        for session, (channels, units) in enumerate(
            zip(dataset.channel_names, dataset.unit_names, strict=True)
        ):
            n = int(np.sum(dataset.item_sessions == session))
            total += n * length * (4 * len(channels) + len(units) + 8)
        return total

    def __len__(self) -> int:
        return len(self.items)

    def batch(self, indices: torch.Tensor) -> PairedBatch:
        """Items at `indices` (int64, CPU) collated: PairedBatch of (B, L, ·) tensors."""
        return collate_paired([self.items[int(i)] for i in indices])


def paired_source(dataset: PairedDataset, *, memory_budget: int = 2 * 1024**3):
    """In-memory source when the items take at most `memory_budget` bytes, else lazy reads."""
    if PairedMemorySource.nbytes(dataset) <= memory_budget:
        return PairedMemorySource(dataset)
    return PairedBatchSource(dataset)


class SessionTable(NamedTuple):
    """The small per-file facts PairedDataset keeps in memory."""

    session: str
    split: np.ndarray  # (n_segments,) str
    segment_id: np.ndarray  # (n_segments,) int64
    segment_bins: int
    channel_names: list[str]
    unit_names: list[str]

    @property
    def size(self) -> int:
        return int(self.split.size)


def _read_table(path: Path) -> SessionTable:
    with SessionReader(path) as reader:
        _check_paired(reader)
        return SessionTable(
            session=str(reader.attrs["session"]),
            split=reader.segments["split"].astype(str),
            segment_id=reader.segments["segment_id"].astype(np.int64),
            segment_bins=int(reader.shape("lfp")[1]),
            channel_names=list(reader.channel_names or []),
            unit_names=[str(name) for name in reader.attrs["unit_names"]],
        )


def _check_paired(reader: SessionReader) -> None:
    missing = [name for name in PAIRED_ARRAYS if name not in reader.array_names]
    if reader.attrs.get("kind") != PAIRED_KIND or missing:
        raise DataError(
            f"{reader.path} is not a paired session file (no {', '.join(missing) or 'kind'}); "
            "prepare the paired dataset again"
        )
