"""Writers of small (or long, streamed) files in the published raw layouts (data-sources §1, §2).

- `write_makin_mat`: a MATLAB v7.3 MAT-file as MATLAB itself lays it out in HDF5: the 512-byte
  userblock whose first 128 bytes are the MAT header ("MATLAB 7.3 MAT-file, ..."), arrays
  transposed (MATLAB is column-major), `MATLAB_class` on every variable, cells as object
  references into `/#refs#` (whose first entry `a` is MATLAB's "canonical empty"), char arrays
  as uint16 with `MATLAB_int_decode` = 2, and [] as a uint64 vector of its dimensions flagged
  `MATLAB_empty` = 1.
- `write_broadband_nwb1`: the NWB 1.0.6 HDF5 layout of the Makin broadband files, written in
  blocks so that a 30-minute 96-channel session (8.4 GB of int16) never sits in memory.
- `write_flint_mat`: `Flint_2012_e<k>.mat` as MATLAB v5 via scipy.io.savemat, with the struct
  nesting of the CRCNS files: Subject(i).Trial(j).Neuron(k).{Spike, LFP}.

The `fake_*` generators produce plausible tiny content for them.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import scipy.io

MAKIN_FIELDS = ("t", "cursor_pos", "target_pos", "finger_pos", "chan_names", "spikes", "wf")
BROADBAND_PARTS = ("data", "timestamps", "conversion", "electrode_names")
MAKIN_SAMPLE_SECONDS = 0.004  # 250 Hz (data-sources §1.1)
BROADBAND_RATE_HZ = 24414.0625  # data-sources §1.2
# Volts per raw count. The real files' value is not known; 0.25 uV/count puts a 100 uV LFP at
# 400 counts, well inside int16.
DEFAULT_CONVERSION = 2.5e-7
FLINT_TIME_STEP = 0.01  # 100 Hz `Time` (data-sources §2)
FLINT_LFP_PER_TIME_SAMPLE = 20  # 2 kHz LFP

_MAT_HEADER_TEXT = (
    "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 23 10:00:00 2017 "
    "HDF5 schema 1.00 ."
)
_REF_NAME_ALPHABET = string.ascii_lowercase + string.ascii_uppercase


# --------------------------------------------------------------------------------------------
# MATLAB v7.3 (Makin sorted spikes and kinematics)
# --------------------------------------------------------------------------------------------


def matlab_header(text: str = _MAT_HEADER_TEXT) -> bytes:
    """The 128-byte MAT header: 116 bytes of text, 8 bytes subsystem offset, version, 'IM'."""
    return text.encode("ascii").ljust(116, b" ")[:116] + bytes(8) + b"\x00\x02" + b"IM"


def _set_class(node: h5py.HLObject, matlab_class: str) -> None:
    node.attrs.create("MATLAB_class", np.bytes_(matlab_class))


class _Refs:
    """Allocates datasets in `/#refs#` under MATLAB's names: a, b, ..., Z, ba, bb, ..."""

    def __init__(self, file: h5py.File) -> None:
        self.group = file.create_group("#refs#")
        self.count = 0
        empty = self._new(np.zeros(2, dtype=np.uint64))
        _set_class(empty, "canonical empty")
        empty.attrs.create("MATLAB_empty", np.uint8(1))
        self.canonical_empty = empty.ref

    def _name(self) -> str:
        index, digits = self.count, []
        while True:
            index, digit = divmod(index, len(_REF_NAME_ALPHABET))
            digits.append(_REF_NAME_ALPHABET[digit])
            if index == 0:
                break
        self.count += 1
        return "".join(reversed(digits))

    def _new(self, data: np.ndarray) -> h5py.Dataset:
        return self.group.create_dataset(self._name(), data=data)

    def double(self, values: np.ndarray, owner: str, *, empty_cells: str) -> h5py.Reference:
        """A MATLAB (n, 1) double column (HDF5 (1, n)); [] when `values` is empty."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            if empty_cells == "canonical":
                return self.canonical_empty
            dataset = self._new(np.zeros(2, dtype=np.uint64))  # dims of the 0x0 []
            dataset.attrs.create("MATLAB_empty", np.uint8(1))
        else:
            dataset = self._new(values.reshape(1, -1))
        _set_class(dataset, "double")
        dataset.attrs.create("H5PATH", np.bytes_(owner))
        return dataset.ref

    def char(self, text: str, owner: str) -> h5py.Reference:
        """A MATLAB (1, L) char row: uint16 codes, HDF5 shape (L, 1)."""
        codes = np.array([ord(c) for c in text], dtype=np.uint16).reshape(-1, 1)
        dataset = self._new(codes)
        _set_class(dataset, "char")
        dataset.attrs.create("MATLAB_int_decode", np.int32(2))
        dataset.attrs.create("H5PATH", np.bytes_(owner))
        return dataset.ref


def _write_double(file: h5py.File, name: str, matlab_array: np.ndarray) -> None:
    """A MATLAB (rows, cols) double stored transposed, as MATLAB does."""
    array = np.asarray(matlab_array, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(-1, 1)  # MATLAB column vector
    _set_class(file.create_dataset(name, data=np.ascontiguousarray(array.T)), "double")


def _write_cell(file: h5py.File, name: str, refs: list[list[h5py.Reference]]) -> None:
    """A cell array; `refs[row][col]` in HDF5 orientation (MATLAB's transpose)."""
    array = np.empty((len(refs), len(refs[0]) if refs else 0), dtype=h5py.ref_dtype)
    for row, cells in enumerate(refs):
        for col, ref in enumerate(cells):
            array[row, col] = ref
    _set_class(file.create_dataset(name, data=array), "cell")


def write_makin_mat(
    path: str | Path,
    *,
    t: np.ndarray,
    cursor_pos: np.ndarray,
    target_pos: np.ndarray,
    finger_pos: np.ndarray | None,
    channel_names: Sequence[str],
    spikes: Sequence[Sequence[np.ndarray]],
    waveforms: bool = False,
    empty_cells: str = "double",
    omit: Sequence[str] = (),
) -> Path:
    """Write a Makin session `.mat` in MATLAB v7.3 layout.

    t (K,), cursor_pos (K, 2), target_pos (K, 2), finger_pos (K, 3 | 6) or None, in MATLAB
    orientation (they are stored transposed). `spikes[u][n]` are unit row u's spike times on
    channel n (row 0 = hash), an empty array for an empty cell; stored as the (u, n) cell
    `spikes`. `waveforms` adds a `wf` cell of random (n_spikes, 48) snippets (never read).
    `empty_cells`: "double" stores [] as MATLAB does for an explicit empty double, "canonical"
    points at `/#refs#/a`. `omit` leaves out any of MAKIN_FIELDS (for bad-input tests).
    """
    if empty_cells not in ("double", "canonical"):
        raise ValueError(f"empty_cells must be 'double' or 'canonical', got {empty_cells!r}")
    unknown = set(omit) - set(MAKIN_FIELDS)
    if unknown:
        raise ValueError(f"cannot omit {sorted(unknown)}; fields are {MAKIN_FIELDS}")
    n_channels = len(channel_names)
    if any(len(row) != n_channels for row in spikes):
        raise ValueError("every spikes row needs one cell per channel")
    path = Path(path)
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as file:
        refs = _Refs(file)
        fields: dict[str, np.ndarray | None] = {
            "t": np.asarray(t).reshape(-1, 1),
            "cursor_pos": cursor_pos,
            "target_pos": target_pos,
            "finger_pos": finger_pos,
        }
        for name, value in fields.items():
            if name not in omit and value is not None:
                _write_double(file, name, value)
        if "chan_names" not in omit:
            # MATLAB (n, 1) cell -> HDF5 (1, n)
            _write_cell(file, "chan_names", [[refs.char(c, "/chan_names") for c in channel_names]])
        if "spikes" not in omit:
            # MATLAB (n, u) cell -> HDF5 (u, n)
            cells = [
                [refs.double(times, "/spikes", empty_cells=empty_cells) for times in row]
                for row in spikes
            ]
            _write_cell(file, "spikes", cells)
        if waveforms and "wf" not in omit:
            rng = np.random.default_rng(0)
            cells = [
                [
                    refs.double(
                        rng.normal(size=(np.asarray(times).size, 48)).T.ravel(),
                        "/wf",
                        empty_cells=empty_cells,
                    )
                    for times in row
                ]
                for row in spikes
            ]
            _write_cell(file, "wf", cells)
    with path.open("r+b") as raw:
        raw.write(matlab_header())
    return path


class FakeMakinSession(NamedTuple):
    """Keyword arguments of `write_makin_mat` (use `write_makin_mat(p, **s._asdict())`)."""

    t: np.ndarray  # (K,) seconds, 250 Hz
    cursor_pos: np.ndarray  # (K, 2) mm
    target_pos: np.ndarray  # (K, 2) mm, piecewise constant
    finger_pos: np.ndarray  # (K, 3 | 6) cm, (z, -x, -y[, 3 orientation angles])
    channel_names: list[str]  # (n,)
    spikes: list[list[np.ndarray]]  # [u][n] spike times, row 0 = hash; empty for no unit


def fake_makin_session(
    seed: int,
    duration_seconds: float = 20.0,
    n_channels: int = 4,
    *,
    units_per_channel: int = 3,
    finger_columns: int = 3,
    start_time: float = 1.0,
) -> FakeMakinSession:
    """A random-walk cursor chasing targets on an 8x8 grid, with cosine-tuned Poisson units.

    Each channel has a hash unit (row 0) and a random number (0 .. units_per_channel - 1) of
    sorted units; the remaining cells are empty, as in the real files.
    """
    if finger_columns not in (3, 6):
        raise ValueError(f"finger_columns must be 3 or 6, got {finger_columns}")
    rng = np.random.default_rng(seed)
    n_samples = int(round(duration_seconds / MAKIN_SAMPLE_SECONDS))
    t = start_time + MAKIN_SAMPLE_SECONDS * np.arange(n_samples)  # (K,)
    grid = np.linspace(-70.0, 70.0, 8)  # mm
    target_pos = np.empty((n_samples, 2))
    cursor_pos = np.empty((n_samples, 2))
    position, target = rng.uniform(-20, 20, size=2), rng.choice(grid, size=2)
    next_change = int(rng.uniform(1.0, 2.5) / MAKIN_SAMPLE_SECONDS)
    smoothing = 1.0 - np.exp(-MAKIN_SAMPLE_SECONDS / 0.15)  # 150 ms reach time constant
    for i in range(n_samples):
        if i == next_change:
            target = rng.choice(grid, size=2)
            next_change += int(rng.uniform(1.0, 2.5) / MAKIN_SAMPLE_SECONDS)
        position = position + smoothing * (target - position) + rng.normal(scale=0.2, size=2)
        target_pos[i], cursor_pos[i] = target, position
    finger = np.column_stack(
        [
            2.0 + 0.05 * rng.standard_normal(n_samples),
            -cursor_pos[:, 0] / 10,
            -cursor_pos[:, 1] / 10,
        ]
    )  # cm, (z, -x, -y)
    if finger_columns == 6:
        finger = np.column_stack([finger, 0.1 * rng.standard_normal((n_samples, 3))])

    velocity = np.gradient(cursor_pos, t, axis=0)  # (K, 2) mm/s
    speed = np.linalg.norm(velocity, axis=1)
    direction = np.arctan2(velocity[:, 1], velocity[:, 0])
    end_time = t[-1] + MAKIN_SAMPLE_SECONDS

    def unit_spikes(base_hz: float, gain: float) -> np.ndarray:
        preferred = rng.uniform(-np.pi, np.pi)
        rate = base_hz * (1 + gain * np.tanh(speed / 200) * np.cos(direction - preferred))
        peak = base_hz * (1 + gain)
        candidates = np.sort(
            rng.uniform(start_time, end_time, rng.poisson(peak * duration_seconds))
        )
        index = np.clip(np.searchsorted(t, candidates) - 1, 0, n_samples - 1)
        return candidates[rng.uniform(0, peak, candidates.size) < rate[index]]

    names = [f"M1 {c + 1:03d}" if c < 96 else f"S1 {c - 95:03d}" for c in range(n_channels)]
    spikes = [[np.zeros(0) for _ in range(n_channels)] for _ in range(units_per_channel)]
    for channel in range(n_channels):
        spikes[0][channel] = unit_spikes(rng.uniform(20, 40), 0.3)  # hash: many, weakly tuned
        for row in range(1, 1 + int(rng.integers(0, units_per_channel))):
            spikes[row][channel] = unit_spikes(rng.uniform(2, 15), 0.8)
    return FakeMakinSession(
        t=t,
        cursor_pos=cursor_pos,
        target_pos=target_pos,
        finger_pos=finger,
        channel_names=names,
        spikes=spikes,
    )


# --------------------------------------------------------------------------------------------
# NWB 1.0.6 broadband
# --------------------------------------------------------------------------------------------

BlockFn = Callable[[int, int], np.ndarray]


def _string_dataset(group: h5py.Group, name: str, text: str) -> None:
    group.create_dataset(name, data=text, dtype=h5py.string_dtype())


def write_broadband_nwb1(
    path: str | Path,
    *,
    data_int16: np.ndarray | BlockFn,
    n_samples: int | None = None,
    n_channels: int | None = None,
    sampling_rate: float = BROADBAND_RATE_HZ,
    start_time: float = 0.0,
    conversion: float = DEFAULT_CONVERSION,
    channel_names: Sequence[str] | None = None,
    chunk_rows: int | None = None,
    block_rows: int = 1 << 18,
    fixed_length_names: bool = False,
    omit_broadband: bool = False,
    omit: Sequence[str] = (),
) -> Path:
    """Write a broadband session in the NWB 1.0.6 HDF5 layout (data-sources §1.2).

    `data_int16` is either the whole (k, n) array or `blocks(start, stop)` returning rows
    [start, stop) as a (stop - start, n) array (then `n_samples` and `n_channels` are needed);
    the data are written `block_rows` rows at a time, timestamps too
    (start_time + i / sampling_rate). The stored dtype is the array's (int16 for a callable).
    `chunk_rows` None writes a contiguous dataset, else (chunk_rows, n) chunks. `omit_broadband`
    leaves out the whole broadband group, `omit` parts of it (BROADBAND_PARTS).
    """
    unknown = set(omit) - set(BROADBAND_PARTS)
    if unknown:
        raise ValueError(f"cannot omit {sorted(unknown)}; parts are {BROADBAND_PARTS}")
    if callable(data_int16):
        if n_samples is None or n_channels is None:
            raise ValueError("a block callable needs n_samples and n_channels")
        blocks, dtype = data_int16, np.dtype(np.int16)
    else:
        array = np.asarray(data_int16)
        n_samples, n_channels = array.shape
        blocks, dtype = (lambda start, stop: array[start:stop]), array.dtype
    if channel_names is None:
        channel_names = [f"elec{c + 1}" for c in range(n_channels)]
    if len(channel_names) != n_channels:
        raise ValueError(f"{len(channel_names)} channel names for {n_channels} channels")
    if chunk_rows is not None:
        block_rows = max(1, block_rows // chunk_rows) * chunk_rows  # whole chunks per write
    path = Path(path)
    with h5py.File(path, "w") as file:
        _string_dataset(file, "nwb_version", "NWB-1.0.6")
        _string_dataset(file, "identifier", f"neuralcli fake broadband {path.stem}")
        _string_dataset(file, "session_description", "synthetic broadband (neuralcli.testing)")
        _string_dataset(file, "session_start_time", "2016-06-22T10:00:00")
        file.create_dataset(
            "file_create_date", data=["2017-05-26T00:00:00"], dtype=h5py.string_dtype()
        )
        for group in (
            "acquisition/images",
            "analysis",
            "epochs",
            "processing",
            "stimulus/presentation",
            "stimulus/templates",
            "general/devices",
        ):
            file.create_group(group)
        ephys = file.create_group("general/extracellular_ephys")
        columns = np.arange(n_channels) % 10
        rows = np.arange(n_channels) // 10
        electrode_map = np.column_stack([columns * 400e-6, rows * 400e-6, np.zeros(n_channels)])
        ephys.create_dataset("electrode_map", data=electrode_map)  # (n, 3) metres, Utah pitch
        ephys.create_dataset(
            "electrode_group", data=["array"] * n_channels, dtype=h5py.string_dtype()
        )
        series = file.create_group("acquisition/timeseries")
        if omit_broadband:
            return path
        broadband = series.create_group("broadband")
        broadband.attrs.create("neurodata_type", np.bytes_("TimeSeries"))
        broadband.attrs.create("ancestry", np.array([b"TimeSeries", b"ElectricalSeries"]))
        broadband.attrs.create("source", np.bytes_("synthetic"))
        broadband.attrs.create("description", np.bytes_("unfiltered broadband"))
        broadband.create_dataset("num_samples", data=np.int64(n_samples))
        broadband.create_dataset("electrode_idx", data=np.arange(n_channels, dtype=np.int32))
        if "electrode_names" not in omit:
            if fixed_length_names:
                names = np.array([name.encode() for name in channel_names])  # "S<len>"
                broadband.create_dataset("electrode_names", data=names)
            else:
                broadband.create_dataset(
                    "electrode_names", data=list(channel_names), dtype=h5py.string_dtype()
                )
        data = None
        if "data" not in omit:
            data = broadband.create_dataset(
                "data",
                shape=(n_samples, n_channels),
                dtype=dtype,
                chunks=(chunk_rows, n_channels) if chunk_rows is not None else None,
            )
            if "conversion" not in omit:
                data.attrs.create("conversion", np.float32(conversion))  # NWB 1.x: float32
            data.attrs.create("resolution", np.float32(conversion))
            data.attrs.create("unit", np.bytes_("volt"))
        timestamps = None
        if "timestamps" not in omit:
            timestamps = broadband.create_dataset("timestamps", shape=(n_samples,), dtype="f8")
            timestamps.attrs.create("interval", np.int32(1))
            timestamps.attrs.create("unit", np.bytes_("Seconds"))
        for start in range(0, n_samples, block_rows):
            stop = min(start + block_rows, n_samples)
            if data is not None:
                block = np.ascontiguousarray(blocks(start, stop), dtype=dtype)  # (rows, n)
                if block.shape != (stop - start, n_channels):
                    raise ValueError(
                        f"block [{start}, {stop}) has shape {block.shape}, expected "
                        f"({stop - start}, {n_channels})"
                    )
                data.write_direct(block, dest_sel=np.s_[start:stop])
            if timestamps is not None:
                timestamps.write_direct(
                    start_time + np.arange(start, stop, dtype=np.float64) / sampling_rate,
                    dest_sel=np.s_[start:stop],
                )
    return path


def fake_broadband(
    seed: int,
    n_channels: int,
    *,
    sampling_rate: float = BROADBAND_RATE_HZ,
    conversion: float = DEFAULT_CONVERSION,
    tile_rows: int = 1 << 16,
) -> BlockFn:
    """`blocks(start, stop)` -> (stop - start, n) int16 counts of a plausible broadband.

    Per channel: a 4-12 Hz oscillation of about 100 uV, a shared 60 Hz line component of 20 uV
    and white (uniform) noise of 30 uV standard deviation. The noise comes in fixed tiles seeded
    by (seed, tile), so the values of a sample do not depend on how the caller cuts the blocks.
    """
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(4.0, 12.0, n_channels)  # (n,) Hz
    phase = rng.uniform(0.0, 2 * np.pi, n_channels)  # (n,)
    counts_per_volt = 1.0 / conversion
    # Each tile is sin(w t_local + offset) = sin(w t_local) cos(offset) + cos(w t_local) sin(offset)
    # with the tile-local tables computed once and the offset reduced modulo 2 pi in float64: no
    # transcendental per sample, so a benchmark can stream GBs of it.
    local_seconds = np.arange(tile_rows)[:, None] / sampling_rate  # (tile, 1)
    omega = 2 * np.pi * frequency  # (n,)
    amplitude = 100e-6 * counts_per_volt
    sin_table = (amplitude * np.sin(local_seconds * omega)).astype(np.float32)  # (tile, n)
    cos_table = (amplitude * np.cos(local_seconds * omega)).astype(np.float32)  # (tile, n)
    line_phase = 2 * np.pi * 60.0 * local_seconds  # (tile, 1)
    noise_half_width = max(1, int(round(np.sqrt(3) * 30e-6 * counts_per_volt)))  # sd 30 uV

    def tile(index: int) -> np.ndarray:
        tile_start = index * tile_rows / sampling_rate
        offset = np.mod(omega * tile_start + phase, 2 * np.pi)  # (n,)
        counts = sin_table * np.cos(offset).astype(np.float32)  # (tile, n)
        counts += cos_table * np.sin(offset).astype(np.float32)
        line = 20e-6 * counts_per_volt * np.sin(line_phase + 2 * np.pi * 60.0 * tile_start)
        counts += line.astype(np.float32)  # (tile, 1): line noise common to all channels
        np.rint(counts, out=counts)
        np.clip(counts, -32768 + noise_half_width, 32767 - noise_half_width, out=counts)
        # Uniform integer noise: Gaussian draws would make generation several times slower.
        noise = np.random.default_rng([seed, index]).integers(
            -noise_half_width, noise_half_width + 1, (tile_rows, n_channels), dtype=np.int16
        )
        noise += counts.astype(np.int16)
        return noise

    def blocks(start: int, stop: int) -> np.ndarray:
        first, last = start // tile_rows, (stop - 1) // tile_rows
        if stop <= start:
            return np.zeros((0, n_channels), dtype=np.int16)
        joined = np.concatenate([tile(i) for i in range(first, last + 1)], axis=0)
        offset = start - first * tile_rows
        return joined[offset : offset + stop - start]

    return blocks


# --------------------------------------------------------------------------------------------
# Flint 2012 (MATLAB v5)
# --------------------------------------------------------------------------------------------


class FakeFlintTrial(NamedTuple):
    time: np.ndarray  # (n,) seconds, 100 Hz
    hand_vel: np.ndarray  # (n, 3); third column zero, as "empty" in the real files
    hand_pos: np.ndarray  # (n, 3)
    target_pos: np.ndarray  # (n, 3), NaN while no target is shown
    condition: str  # "Good" or "Bad"
    spikes: list[np.ndarray]  # per Neuron index: (n_spikes,) seconds
    lfp: list[np.ndarray]  # per Neuron index: (20 n,) at 2 kHz, or (0,) for an empty entry


class FakeFlintSubject(NamedTuple):
    trials: list[FakeFlintTrial]


def _column(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values.reshape(-1, 1) if values.size else np.zeros((0, 0))


def _struct_array(shape: tuple[int, int], fields: Sequence[str]) -> np.ndarray:
    return np.empty(shape, dtype=[(name, object) for name in fields])


def write_flint_mat(
    path: str | Path,
    subjects: Sequence[FakeFlintSubject],
    *,
    do_compression: bool = False,
    subject_orientation: str = "column",
) -> Path:
    """Write `Flint_2012_e<k>.mat` (MATLAB v5) with the CRCNS struct nesting.

    After `scipy.io.loadmat(path)` (defaults) the access pattern of data-sources §2 works:
    `m["Subject"][i][0]["Trial"]` is an (n_trials, 1) struct array, `["Time"][j][0]` a column,
    `["Neuron"][j][0]["LFP"][k][0]` a column or a 0x0 empty. `subject_orientation` "column"
    stores Subject as (n_subjects, 1) (what that pattern needs), "row" as (1, n_subjects).
    """
    if subject_orientation not in ("column", "row"):
        raise ValueError(
            f"subject_orientation must be 'column' or 'row', got {subject_orientation!r}"
        )
    shape = (len(subjects), 1) if subject_orientation == "column" else (1, len(subjects))
    subject_array = _struct_array(shape, ["Trial"])
    for i, subject in enumerate(subjects):
        trials = _struct_array(
            (len(subject.trials), 1),
            ["Time", "HandVel", "HandPos", "TargetPos", "Condition", "Neuron"],
        )
        for j, trial in enumerate(subject.trials):
            neurons = _struct_array((len(trial.spikes), 1), ["Spike", "LFP"])
            for k, (spike_times, lfp) in enumerate(zip(trial.spikes, trial.lfp, strict=True)):
                neurons["Spike"][k, 0] = _column(spike_times)
                neurons["LFP"][k, 0] = _column(lfp)
            trials["Time"][j, 0] = _column(trial.time)
            trials["HandVel"][j, 0] = np.asarray(trial.hand_vel, dtype=np.float64)
            trials["HandPos"][j, 0] = np.asarray(trial.hand_pos, dtype=np.float64)
            trials["TargetPos"][j, 0] = np.asarray(trial.target_pos, dtype=np.float64)
            trials["Condition"][j, 0] = trial.condition
            trials["Neuron"][j, 0] = neurons
        subject_array["Trial"][np.unravel_index(i, shape)] = trials
    path = Path(path)
    scipy.io.savemat(path, {"Subject": subject_array}, do_compression=do_compression)
    return path


def fake_flint_subject(
    seed: int,
    n_trials: int = 3,
    n_channels: int = 96,
    *,
    empty_lfp_channels: Sequence[int] = (95,),
    trial_seconds: tuple[float, float] = (1.0, 2.0),
    start_time: float = 0.0,
    gap_seconds: float = 0.0,
) -> FakeFlintSubject:
    """Contiguous centre-out trials: 100 Hz Time, bell-shaped reaches, 2 kHz LFP, Poisson spikes.

    `empty_lfp_channels` (0-based Neuron indices) get an empty LFP entry in every trial, so the
    default leaves 95 channels as in the real sessions. `gap_seconds` inserts a pause between
    trials beyond the usual 10 ms step.
    """
    rng = np.random.default_rng(seed)
    frequency = rng.uniform(3.0, 20.0, n_channels)
    base_rate = rng.uniform(2.0, 30.0, n_channels)
    trials = []
    next_start = start_time
    for _ in range(n_trials):
        n = int(round(rng.uniform(*trial_seconds) / FLINT_TIME_STEP))
        time = next_start + FLINT_TIME_STEP * np.arange(n)  # (n,)
        next_start = time[-1] + FLINT_TIME_STEP + gap_seconds
        angle = rng.uniform(-np.pi, np.pi)
        phase = np.linspace(0.0, 1.0, n)
        speed = 0.3 * np.sin(np.pi * phase) ** 2  # m/s, one reach per trial
        hand_vel = np.column_stack([speed * np.cos(angle), speed * np.sin(angle), np.zeros(n)])
        hand_vel[:, :2] += 0.005 * rng.standard_normal((n, 2))
        hand_pos = np.cumsum(hand_vel, axis=0) * FLINT_TIME_STEP
        target_pos = np.full((n, 3), np.nan)
        target_pos[n // 5 :, :2] = 0.08 * np.array([np.cos(angle), np.sin(angle)])
        target_pos[n // 5 :, 2] = 0.0
        lfp_time = time[0] + np.arange(n * FLINT_LFP_PER_TIME_SAMPLE) * (
            FLINT_TIME_STEP / FLINT_LFP_PER_TIME_SAMPLE
        )  # (20 n,) 2 kHz
        spikes, lfp = [], []
        end = time[-1] + FLINT_TIME_STEP
        for k in range(n_channels):
            count = rng.poisson(base_rate[k] * (end - time[0]))
            spikes.append(np.sort(rng.uniform(time[0], end, count)))
            if k in empty_lfp_channels:
                lfp.append(np.zeros(0))
            else:
                lfp.append(
                    50.0 * np.sin(2 * np.pi * frequency[k] * lfp_time)
                    + 10.0 * rng.standard_normal(lfp_time.size)
                )
        trials.append(
            FakeFlintTrial(
                time=time,
                hand_vel=hand_vel,
                hand_pos=hand_pos,
                target_pos=target_pos,
                condition="Good" if rng.uniform() < 0.8 else "Bad",
                spikes=spikes,
                lfp=lfp,
            )
        )
    return FakeFlintSubject(trials=trials)
