"""Readers of the O'Doherty/Makin/Sabes reaching files (data-sources §1.1, §1.2).

Two files per session, both HDF5, both read with h5py:

- `indy_<session>.mat`: MATLAB v7.3 (HDF5 with a 512-byte MATLAB userblock). MATLAB is
  column-major, so every array appears transposed: MATLAB's (K, 2) `cursor_pos` is the HDF5
  dataset (2, K). Cell arrays are datasets of object references into `/#refs#`; char arrays are
  uint16 codes; an empty array is a uint64 dataset holding its dimensions with the attribute
  `MATLAB_empty` = 1. Only the fields used here are read (never `wf`).
- `indy_<session>.nwb`: NWB 1.0.6 (which pynwb cannot read) holding the 24.4 kHz broadband,
  (k, n) raw samples whose `conversion` attribute scales them to volts. `open_broadband` reads
  it in slices so that a several-GB session never has to fit in memory.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import h5py
import numpy as np

from neuralcli.errors import DataError

REQUIRED_MAT_FIELDS = ("t", "cursor_pos", "target_pos", "chan_names", "spikes")
BROADBAND_GROUP = "/acquisition/timeseries/broadband"
ELECTRODE_MAP = "/general/extracellular_ephys/electrode_map"

# The HDF5 chunk cache is per dataset; it must hold one full row of chunks so that a slice
# starting mid-chunk does not read (and for compressed data decompress) that chunk twice.
_MIN_CHUNK_CACHE_BYTES = 64 * 2**20
# `read` converts to volts in pieces of about this many raw bytes (fits in L2/L3 cache).
_PIECE_BYTES = 2 * 2**20


class MakinUnit(NamedTuple):
    """One cell of the `spikes` cell array: a sorted unit, or the channel's hash unit."""

    name: str  # "M1 001 hash" (unit_index 0) or "M1 001 u2"
    channel_index: int  # column of `spikes` (index into MakinMat.channel_names)
    unit_index: int  # row of `spikes`: 0 = hash (unsorted threshold crossings), 1.. sorted
    spike_times: np.ndarray  # (n_spikes,) float64 seconds on the clock of MakinMat.t


class MakinMat(NamedTuple):
    """The fields of one `indy_<session>.mat` that the pipelines use, MATLAB orientation."""

    t: np.ndarray  # (K,) float64 seconds, 250 Hz
    cursor_pos: np.ndarray  # (K, 2) float64 mm
    target_pos: np.ndarray  # (K, 2) float64 mm, same frame as the cursor
    finger_pos: np.ndarray | None  # (K, 3) or (K, 6) float64 cm, (z, -x, -y, ...); None if absent
    channel_names: list[str]  # (n,) "M1 001", "S1 001", ...
    units: list[MakinUnit]  # channel-major: every unit of channel 0 (hash first), then channel 1


def _refetch_hint(path: Path) -> str:
    return f"re-download it with `neuralcli data fetch makin --sessions {_session_of(path)}`"


def _session_of(path: Path) -> str:
    stem = path.stem
    for prefix in ("indy_", "loco_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def _is_matlab_empty(dataset: h5py.Dataset) -> bool:
    # MATLAB v7.3 stores [] (and the "canonical empty" of unset cells) as a uint64 vector of its
    # dimensions flagged MATLAB_empty; other writers produce 0-d or zero-size datasets.
    return (
        bool(dataset.attrs.get("MATLAB_empty", 0))
        or dataset.shape in ((), None)
        or (dataset.size == 0)
    )


def _decode_char(dataset: h5py.Dataset) -> str:
    if _is_matlab_empty(dataset):
        return ""
    codes = np.asarray(dataset[()]).ravel()  # MATLAB (1, L) char -> HDF5 (L, 1) uint16
    return "".join(chr(int(code)) for code in codes)


def _as_rows(array: np.ndarray, n_rows: int, name: str, path: Path) -> np.ndarray:
    """MATLAB (K, d) stored as HDF5 (d, K) -> (K, d) float64."""
    if array.ndim != 2:
        raise DataError(
            f"{path.name}: `{name}` has shape {array.shape}, expected 2-D; {_refetch_hint(path)}"
        )
    if array.shape[1] == n_rows:
        array = array.T
    elif array.shape[0] != n_rows:
        raise DataError(
            f"{path.name}: `{name}` has shape {array.shape} but `t` has {n_rows} samples; "
            f"{_refetch_hint(path)}"
        )
    return np.ascontiguousarray(array, dtype=np.float64)


def read_makin_mat(path: Path) -> MakinMat:
    """Read t, cursor/target/finger positions, channel names and spike times of one session.

    Units with no spikes at all are left out; units are named "<channel> hash" for row 0 of
    `spikes` and "<channel> u<r>" for sorted row r. DataError when the file is missing, is not
    HDF5 (an older v5 .mat) or lacks one of t, cursor_pos, target_pos, chan_names, spikes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; {_refetch_hint(path)}")
    if not h5py.is_hdf5(path):
        raise DataError(
            f"{path.name} is not a MATLAB v7.3 (HDF5) file, as the Makin sessions are; "
            f"{_refetch_hint(path)}"
        )
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path.name} cannot be opened ({error}); {_refetch_hint(path)}") from None
    with file:
        for field in REQUIRED_MAT_FIELDS:
            if field not in file:
                raise DataError(
                    f"{path.name} has no `{field}` field, so it is not a complete Makin session "
                    f"file; {_refetch_hint(path)}"
                )
        t = np.asarray(file["t"][()], dtype=np.float64).ravel()  # HDF5 (1, K)
        n_samples = t.shape[0]
        cursor_pos = _as_rows(file["cursor_pos"][()], n_samples, "cursor_pos", path)  # (K, 2)
        target_pos = _as_rows(file["target_pos"][()], n_samples, "target_pos", path)  # (K, 2)
        finger_pos = (
            _as_rows(file["finger_pos"][()], n_samples, "finger_pos", path)  # (K, 3 | 6)
            if "finger_pos" in file
            else None
        )
        name_refs = np.asarray(file["chan_names"][()]).ravel()  # HDF5 (1, n) references
        channel_names = [_decode_char(file[ref]) if ref else "" for ref in name_refs]
        spike_refs = np.asarray(file["spikes"][()])  # HDF5 (u, n) references
        if spike_refs.ndim == 1:
            spike_refs = spike_refs[None, :]
        if spike_refs.shape[1] != len(channel_names):
            raise DataError(
                f"{path.name}: `spikes` has {spike_refs.shape[1]} channel columns but "
                f"`chan_names` has {len(channel_names)}; {_refetch_hint(path)}"
            )
        units = []
        for channel in range(spike_refs.shape[1]):
            for row in range(spike_refs.shape[0]):
                ref = spike_refs[row, channel]
                if not ref:
                    continue
                cell = file[ref]
                if _is_matlab_empty(cell):
                    continue
                times = np.asarray(cell[()], dtype=np.float64).ravel()  # HDF5 (1, n_spikes)
                if times.size == 0:
                    continue
                suffix = "hash" if row == 0 else f"u{row}"
                units.append(
                    MakinUnit(
                        name=f"{channel_names[channel]} {suffix}",
                        channel_index=channel,
                        unit_index=row,
                        spike_times=times,
                    )
                )
    return MakinMat(
        t=t,
        cursor_pos=cursor_pos,
        target_pos=target_pos,
        finger_pos=finger_pos,
        channel_names=channel_names,
        units=units,
    )


class NwbBroadband:
    """An open NWB 1.0.6 broadband file; read (k, n) slices in volts with `read`.

    Implements the `BroadbandSource` protocol that the LFP extraction consumes. Use as a
    context manager (or call `close`). Only ts[0], ts[1] and ts[-1] of the timestamps are read.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist; {self._hint()}")
        if not h5py.is_hdf5(self.path):
            raise DataError(f"{self.path.name} is not an HDF5 (NWB 1.0.6) file; {self._hint()}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise DataError(
                f"{self.path.name} cannot be opened ({error}); {self._hint()}"
            ) from None
        try:
            self._open_datasets()
        except BaseException:
            self._file.close()
            raise

    def _hint(self) -> str:
        return (
            f"re-download the broadband with `neuralcli data fetch makin --sessions "
            f"{_session_of(self.path)}`"
        )

    def _missing(self, what: str) -> DataError:
        return DataError(
            f"{self.path.name} has no {what}, so it is not a Makin broadband NWB "
            f"file; {self._hint()}"
        )

    def _open_datasets(self) -> None:
        group = self._file.get(BROADBAND_GROUP)
        if not isinstance(group, h5py.Group):
            raise self._missing(BROADBAND_GROUP)
        for name in ("data", "timestamps"):
            if not isinstance(group.get(name), h5py.Dataset):
                raise self._missing(f"{BROADBAND_GROUP}/{name}")
        data = group["data"]
        if "conversion" not in data.attrs:
            raise self._missing(f"`conversion` attribute on {BROADBAND_GROUP}/data")
        if data.ndim != 2 or data.shape[0] < 2:
            raise DataError(
                f"{self.path.name}: {BROADBAND_GROUP}/data has shape {data.shape}, expected "
                f"(samples >= 2, channels); {self._hint()}"
            )
        timestamps = group["timestamps"]
        if timestamps.shape[0] != data.shape[0]:
            raise DataError(
                f"{self.path.name}: {timestamps.shape[0]} timestamps for {data.shape[0]} samples; "
                f"{self._hint()}"
            )
        self.n_samples = int(data.shape[0])  # k
        self.n_channels = int(data.shape[1])  # n
        self.dtype = data.dtype
        self.conversion = float(np.asarray(data.attrs["conversion"]).ravel()[0])
        first_two = np.asarray(timestamps[0:2], dtype=np.float64)
        self.start_time = float(first_two[0])
        self.end_time = float(timestamps[self.n_samples - 1])
        # The original derives fs from the first two timestamps (data-sources §1.2, §6.1 step 2).
        self.sampling_rate = 1.0 / float(first_two[1] - first_two[0])
        if "electrode_names" in group:
            raw_names = np.asarray(group["electrode_names"][()]).ravel()
            self.channel_names = [
                name.decode() if isinstance(name, bytes) else str(name) for name in raw_names
            ]
        else:
            self.channel_names = [f"ch {index + 1:03d}" for index in range(self.n_channels)]
        self.chunk_rows = int(data.chunks[0]) if data.chunks is not None else None
        piece_rows = max(1, _PIECE_BYTES // (self.n_channels * data.dtype.itemsize))
        if self.chunk_rows is not None:
            piece_rows = max(1, piece_rows // self.chunk_rows) * self.chunk_rows
        self._piece_rows = piece_rows
        self._data = self._open_data_with_cache(data)

    def _open_data_with_cache(self, data: h5py.Dataset) -> h5py.Dataset:
        if data.chunks is None:
            return data
        chunk_rows, chunk_cols = data.chunks
        row_of_chunks = chunk_rows * math.ceil(self.n_channels / chunk_cols) * data.dtype.itemsize
        cache_bytes = max(_MIN_CHUNK_CACHE_BYTES, 2 * row_of_chunks)
        access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        # nslots: a prime well above the number of cached chunks keeps hash collisions rare.
        access.set_chunk_cache(100_003, cache_bytes, 1.0)
        dataset_id = h5py.h5d.open(self._file.id, f"{BROADBAND_GROUP}/data".encode(), dapl=access)
        return h5py.Dataset(dataset_id)

    @property
    def preferred_block_rows(self) -> int:
        """Rows per `read` that keep slices on HDF5 chunk boundaries (about 32 MB of samples)."""
        target = max(1, (32 * 2**20) // (self.n_channels * self.dtype.itemsize))
        if self.chunk_rows is None:
            return target
        return max(1, target // self.chunk_rows) * self.chunk_rows

    def read(self, start: int, stop: int, *, out: np.ndarray | None = None) -> np.ndarray:
        """Samples [start, stop) of every channel, in volts: (stop - start, n) float64.

        `out`, a float64 (stop - start, n) array, receives the samples and is returned; reusing
        one across calls saves the page faults of a fresh allocation per block.
        """
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"read({start}, {stop}) outside [0, {self.n_samples}]")
        shape = (stop - start, self.n_channels)
        if out is None:
            volts = np.empty(shape, dtype=np.float64)  # (rows, n)
        elif out.shape != shape or out.dtype != np.float64:
            raise ValueError(f"out must be float64 {shape}, got {out.dtype} {out.shape}")
        else:
            volts = out
        # Piece by piece through a small buffer: each piece is whole HDF5 chunks (except at the
        # ends) and is scaled while still in cache, and no (rows, n) raw copy is ever held.
        step = self._piece_rows
        buffer = np.empty((step, self.n_channels), dtype=self.dtype)  # (step, n)
        position = start
        while position < stop:
            end = min((position // step + 1) * step, stop)
            raw = buffer[: end - position]
            self._data.read_direct(raw, source_sel=np.s_[position:end])
            piece = volts[position - start : end - start]
            piece[...] = raw
            piece *= self.conversion
            position = end
        return volts

    def read_raw(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) in the file's own units and dtype: (stop - start, n)."""
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"read_raw({start}, {stop}) outside [0, {self.n_samples}]")
        raw = np.empty((stop - start, self.n_channels), dtype=self.dtype)  # (rows, n)
        if stop > start:
            self._data.read_direct(raw, source_sel=np.s_[start:stop])
        return raw

    def electrode_map(self) -> np.ndarray | None:
        """(n, 3) electrode coordinates in metres, or None when the file has none."""
        if ELECTRODE_MAP not in self._file:
            return None
        return np.asarray(self._file[ELECTRODE_MAP][()], dtype=np.float64)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> NwbBroadband:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_broadband(path: Path) -> NwbBroadband:
    """Open a Makin NWB 1.0.6 broadband file; DataError when it lacks the broadband series."""
    return NwbBroadband(Path(path))
