"""Sample files: what `neuralcli sample` writes, and the spike arrays users hand to `evaluate`.

Two formats hold generated spike trains, both (trials, time, neurons) in bins of
`bin_seconds`:

* `.npz` (numpy): arrays `spikes` (n, T, N) int, `rates` (n, T, N) float32, `latents`
  (n, T, d) float32, `bin_seconds` (scalar) and `metadata_json` (0-d unicode array holding
  the generating run and settings as JSON). Loads without pickle. Samples of a conditioned
  model (LDNS §9) add the condition they were drawn with, only the arrays that apply:
  `condition_angle` (n,) float32 reach angle in radians, `condition_velocity` (n, T, 2)
  float32 hand velocity in m/s, `mask` (n, T) uint8 with 1 = real bin (variable-length
  samples are right-padded to the longest; padded bins hold zeros).
* `.nwb` (NWB 2, pynwb): one Units row per neuron with its spike times; one row per sample
  in the "trials" table, trials back to back separated by `trial_gap_seconds`; a bin with
  count c holds c spikes evenly spaced inside it, at (j + ½)/c of the bin (j = 0 … c−1), so
  rebinning recovers the counts exactly. The file's `notes` field holds JSON:
  {"format": "neuralcli.samples", "format_version": 1, "bin_seconds", "num_bins",
  "trial_gap_seconds", "metadata": {...}}; `read_samples_nwb` needs it to rebin.
  Conditions: trials-table columns `condition_angle` (radians) and `length` (real bins; a
  trial's stop_time is then the end of its last real bin), and an acquisition TimeSeries
  `condition_velocity` (m/s, two columns x/y) with one timestamp per bin (the bin's start)
  in the same concatenated trial time as the spikes; `read_samples_nwb_conditions` reads
  them back as the npz arrays.

Both writers go through `atomic_path`, so an interrupted write never leaves half a file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import h5py
import numpy as np

from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_path

NWB_FORMAT = "neuralcli.samples"
NWB_FORMAT_VERSION = 1
_INTEGER_TOLERANCE = 1e-6


class SpikeArray(NamedTuple):
    spikes: np.ndarray  # (n, T, N) int64 counts
    bin_seconds: float | None  # bin width, when the file records it


class Samples(NamedTuple):
    spikes: np.ndarray  # (n, T, N) int64 counts
    rates: np.ndarray  # (n, T, N) float32 Poisson rates per bin
    latents: np.ndarray  # (n, T, d) float32 un-standardised latents
    bin_seconds: float
    metadata: dict[str, Any]
    # The condition of a conditioned model (LDNS §9); None when the file has none.
    condition_angle: np.ndarray | None = None  # (n,) float32 radians
    condition_velocity: np.ndarray | None = None  # (n, T, 2) float32 m/s
    mask: np.ndarray | None = None  # (n, T) uint8, 1 = real bin


CONDITION_ARRAYS = ("condition_angle", "condition_velocity", "mask")


def write_samples_npz(
    path: str | os.PathLike,
    *,
    spikes: np.ndarray,
    rates: np.ndarray,
    latents: np.ndarray,
    bin_seconds: float,
    metadata: dict[str, Any],
    condition_angle: np.ndarray | None = None,
    condition_velocity: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> Path:
    """Write generated samples to `path` (exactly that name) atomically; returns the path.

    spikes: (n, T, N) non-negative integer counts; rates: (n, T, N); latents: (n, T, d).
    metadata: JSON-serialisable description of the generating run and settings.
    Optional conditions (written only when given): condition_angle (n,) radians,
    condition_velocity (n, T, 2) m/s, mask (n, T) 0/1.
    """
    path = Path(path)
    spikes = np.asarray(spikes)
    rates = np.asarray(rates, dtype=np.float32)
    latents = np.asarray(latents, dtype=np.float32)
    _check_counts_for_writing(spikes)
    if rates.shape != spikes.shape:
        raise ValueError(f"rates shape {rates.shape} must equal spikes shape {spikes.shape}")
    if latents.ndim != 3 or latents.shape[:2] != spikes.shape[:2]:
        raise ValueError(
            f"latents shape {latents.shape} must be (n, T, d) with (n, T) = {spikes.shape[:2]}"
        )
    _check_bin_seconds(bin_seconds)
    conditions = _checked_conditions(
        spikes.shape[:2],
        condition_angle=condition_angle,
        condition_velocity=condition_velocity,
        mask=mask,
    )
    metadata_json = json.dumps(metadata, sort_keys=True)
    # np.savez appends ".npz" to a path that lacks it; a file handle keeps the name we chose.
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            spikes=spikes,
            rates=rates,
            latents=latents,
            bin_seconds=np.float64(bin_seconds),
            metadata_json=np.array(metadata_json),
            **conditions,
        )
    return path


def read_samples_npz(path: str | os.PathLike) -> Samples:
    """Everything `write_samples_npz` stored, checked like `read_spike_array`."""
    path = Path(path)
    spike_array = read_spike_array(path)
    with _open_npz(path) as archive:
        missing = [k for k in ("rates", "latents", "metadata_json") if k not in archive.files]
        if missing or spike_array.bin_seconds is None:
            raise DataError(
                f"{path}: not a neuralcli samples file (missing "
                f"{', '.join(missing) or 'bin_seconds'}); regenerate it with `neuralcli sample`"
            )
        rates = _load_member(archive, "rates", path)
        latents = _load_member(archive, "latents", path)
        metadata = json.loads(str(_load_member(archive, "metadata_json", path).item()))
        stored = {
            name: _load_member(archive, name, path)
            for name in CONDITION_ARRAYS
            if name in archive.files
        }
    try:
        conditions = _checked_conditions(spike_array.spikes.shape[:2], **stored)
    except ValueError as err:
        raise DataError(f"{path}: {err}; regenerate it with `neuralcli sample`") from None
    return Samples(
        spikes=spike_array.spikes,
        rates=rates.astype(np.float32, copy=False),
        latents=latents.astype(np.float32, copy=False),
        bin_seconds=spike_array.bin_seconds,
        metadata=metadata,
        **conditions,
    )


def write_samples_nwb(
    path: str | os.PathLike,
    *,
    spikes: np.ndarray,
    bin_seconds: float,
    metadata: dict[str, Any],
    session_description: str,
    trial_gap_seconds: float = 1.0,
    condition_angle: np.ndarray | None = None,
    condition_velocity: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> Path:
    """Write spike counts (n, T, N) as an NWB file of spike times (layout: module docstring).

    Optional conditions as in `write_samples_npz`: condition_angle (n,) radians and the real
    length of each trial (from mask (n, T), right-padded) become trials-table columns,
    condition_velocity (n, T, 2) m/s an acquisition TimeSeries in trial time.
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    path = Path(path)
    spikes = np.asarray(spikes)
    _check_counts_for_writing(spikes)
    _check_bin_seconds(bin_seconds)
    if not (np.isfinite(trial_gap_seconds) and trial_gap_seconds >= 0):
        raise ValueError(f"trial_gap_seconds must be finite and >= 0, got {trial_gap_seconds}")
    n, num_bins, num_neurons = spikes.shape
    conditions = _checked_conditions(
        (n, num_bins),
        condition_angle=condition_angle,
        condition_velocity=condition_velocity,
        mask=mask,
    )
    trial_seconds = num_bins * bin_seconds
    starts = np.arange(n) * (trial_seconds + trial_gap_seconds)  # (n,)
    notes = {
        "format": NWB_FORMAT,
        "format_version": NWB_FORMAT_VERSION,
        "bin_seconds": float(bin_seconds),
        "num_bins": int(num_bins),
        "trial_gap_seconds": float(trial_gap_seconds),
        "metadata": metadata,
    }
    nwbfile = NWBFile(
        session_description=session_description,
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.datetime.now(datetime.timezone.utc),
        notes=json.dumps(notes, sort_keys=True),
    )
    columns: dict[str, np.ndarray] = {}
    if "condition_angle" in conditions:
        nwbfile.add_trial_column(
            name="condition_angle", description="reach angle the sample was conditioned on, rad"
        )
        columns["condition_angle"] = conditions["condition_angle"].astype(np.float64)
    lengths = np.full(n, num_bins, dtype=np.int64)
    if "mask" in conditions:
        nwbfile.add_trial_column(
            name="length", description="real bins of the trial (the rest is padding)"
        )
        lengths = conditions["mask"].sum(axis=1).astype(np.int64)  # right-padded: bins 0..L-1
        columns["length"] = lengths
    for row, start in enumerate(starts):
        nwbfile.add_trial(
            start_time=float(start),
            stop_time=float(start + lengths[row] * bin_seconds),
            **{name: values[row].item() for name, values in columns.items()},
        )
    if "condition_velocity" in conditions:
        bin_starts = starts[:, None] + np.arange(num_bins) * bin_seconds  # (n, T)
        nwbfile.add_acquisition(
            TimeSeries(
                name="condition_velocity",
                data=conditions["condition_velocity"].reshape(n * num_bins, 2),
                unit="m/s",
                timestamps=bin_starts.reshape(-1),
                description="hand velocity (x, y) the samples were conditioned on, one row "
                "per bin at the bin's start",
            )
        )
    for neuron in range(num_neurons):
        nwbfile.add_unit(
            spike_times=_spike_times(spikes[:, :, neuron], starts, bin_seconds), id=neuron
        )
    # An open h5py file, because the temporary name does not end in ".nwb" and pynwb warns.
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        with NWBHDF5IO(file=handle, mode="w") as nwb_io:
            nwb_io.write(nwbfile)
    return path


@contextlib.contextmanager
def _open_samples_nwb(path: Path) -> Iterator[Any]:
    """The NWBFile of `path`, open for reading; DataError for a missing or unreadable file
    (and for any non-DataError raised while the caller reads it)."""
    from pynwb import NWBHDF5IO

    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path to the .nwb samples file")
    try:
        with NWBHDF5IO(str(path), mode="r") as nwb_io:
            yield nwb_io.read()
    except DataError:
        raise
    except Exception as err:  # h5py/hdmf raise many types for a file that is not NWB
        raise DataError(
            f"{path}: cannot read as NWB ({type(err).__name__}: {err}); "
            "check that the file is an NWB file written by `neuralcli sample`"
        ) from err


def read_samples_nwb(path: str | os.PathLike) -> SpikeArray:
    """Rebin a file from `write_samples_nwb` into counts (n, T, N) using its trials table."""

    path = Path(path)
    with _open_samples_nwb(path) as nwbfile:
        notes = _parse_notes(nwbfile.notes, path)
        if nwbfile.trials is None or nwbfile.units is None:
            raise DataError(
                f"{path}: no trials or units table; only NWB files written by "
                "`neuralcli sample` can be read back as samples"
            )
        starts = np.asarray(nwbfile.trials.start_time.data[:], dtype=np.float64)
        all_times = np.asarray(nwbfile.units.spike_times.data[:], dtype=np.float64)
        ends = np.asarray(nwbfile.units.spike_times_index.data[:], dtype=np.int64)
    bin_seconds = notes["bin_seconds"]
    num_bins = notes["num_bins"]
    n = starts.shape[0]
    counts = np.zeros((n, num_bins, ends.shape[0]), dtype=np.int64)  # (n, T, N)
    begin = 0
    for neuron, end in enumerate(ends):
        times = all_times[begin:end]
        begin = end
        trial = np.searchsorted(starts, times, side="right") - 1
        inside = trial >= 0
        offset = (times[inside] - starts[trial[inside]]) / bin_seconds
        bins = np.floor(offset).astype(np.int64)
        keep = bins < num_bins  # spikes in the gap after a trial belong to no bin
        flat = trial[inside][keep] * num_bins + bins[keep]
        counts[:, :, neuron] = np.bincount(flat, minlength=n * num_bins).reshape(n, num_bins)
    return SpikeArray(spikes=counts, bin_seconds=bin_seconds)


def read_samples_nwb_conditions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The conditions a file from `write_samples_nwb` holds, keyed like the npz arrays.

    Returns only those present: condition_angle (n,) float32 radians, condition_velocity
    (n, T, 2) float32 m/s, mask (n, T) uint8 rebuilt from the trials' `length` column.
    """

    path = Path(path)
    with _open_samples_nwb(path) as nwbfile:
        notes = _parse_notes(nwbfile.notes, path)
        if nwbfile.trials is None:
            raise DataError(f"{path}: no trials table; not a `neuralcli sample` NWB file")
        trials = nwbfile.trials
        n = len(trials)
        found: dict[str, np.ndarray] = {}
        if "condition_angle" in trials.colnames:
            found["condition_angle"] = np.asarray(trials["condition_angle"].data[:])
        if "length" in trials.colnames:
            found["length"] = np.asarray(trials["length"].data[:])
        if "condition_velocity" in nwbfile.acquisition:
            found["condition_velocity"] = np.asarray(
                nwbfile.acquisition["condition_velocity"].data[:]
            )
    num_bins = notes["num_bins"]
    conditions: dict[str, np.ndarray] = {}
    if "condition_angle" in found:
        conditions["condition_angle"] = found["condition_angle"].astype(np.float32)
    if "condition_velocity" in found:
        velocity = found["condition_velocity"].astype(np.float32)  # (n·T, 2)
        conditions["condition_velocity"] = velocity.reshape(n, num_bins, 2)
    if "length" in found:
        lengths = found["length"].astype(np.int64)  # (n,)
        conditions["mask"] = (np.arange(num_bins)[None] < lengths[:, None]).astype(np.uint8)
    return conditions


def read_spike_array(path_or_obj: str | os.PathLike | IO[bytes] | np.ndarray) -> SpikeArray:
    """Load and check user spike counts from a `.npz` with a `spikes` array (trials, time, neurons).

    Accepts a path, an open binary file, or an array (checked the same way). An optional
    scalar `bin_seconds` array gives the bin width. Counts that are integers to within 1e-6
    are rounded; anything else that is not a usable count array raises DataError.
    Returns spikes as int64 (n, T, N).
    """
    if isinstance(path_or_obj, np.ndarray):
        return SpikeArray(spikes=_check_counts(path_or_obj, "spike array"), bin_seconds=None)
    if isinstance(path_or_obj, (str, os.PathLike)):
        name = str(path_or_obj)
        if not Path(path_or_obj).is_file():
            raise DataError(
                f"{name}: no such file; pass a .npz holding a 'spikes' array "
                "of shape (trials, time, neurons)"
            )
    else:
        name = str(getattr(path_or_obj, "name", "<file object>"))
    with _open_npz(path_or_obj, name) as archive:
        if "spikes" not in archive.files:
            present = ", ".join(archive.files) or "none"
            raise DataError(
                f"{name}: no 'spikes' array (arrays present: {present}); save the counts with "
                "np.savez(path, spikes=counts) with counts of shape (trials, time, neurons)"
            )
        spikes = _check_counts(_load_member(archive, "spikes", name), name)
        bin_seconds = None
        if "bin_seconds" in archive.files:
            value = _load_member(archive, "bin_seconds", name)
            if value.size != 1 or not np.issubdtype(value.dtype, np.number):
                raise DataError(
                    f"{name}: 'bin_seconds' must be one number, got shape {value.shape}"
                )
            bin_seconds = float(value.reshape(()))
            if not (np.isfinite(bin_seconds) and bin_seconds > 0):
                raise DataError(
                    f"{name}: 'bin_seconds' is {bin_seconds}; it must be a positive bin width "
                    "in seconds (or leave it out)"
                )
    return SpikeArray(spikes=spikes, bin_seconds=bin_seconds)


def _open_npz(source: str | os.PathLike | IO[bytes], name: str | None = None) -> Any:
    name = str(source) if name is None else name
    try:
        loaded = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(
            f"{name}: not a readable .npz file ({type(err).__name__}); save the counts with "
            "np.savez(path, spikes=counts)"
        ) from err
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(
            f"{name}: is a single .npy array, not a .npz archive; save it with "
            "np.savez(path, spikes=counts)"
        )
    return loaded


def _load_member(archive: Any, key: str, name: str | os.PathLike) -> np.ndarray:
    try:
        return archive[key]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError(
            f"{name}: array {key!r} is corrupt or holds Python objects ({type(err).__name__}); "
            "re-save it as a plain numeric array with np.savez"
        ) from err


def _check_counts(array: np.ndarray, name: str) -> np.ndarray:
    """Validate spike counts (n, T, N) and return them as int64."""
    if array.ndim != 3:
        hint = "; add a trials axis with counts[None]" if array.ndim == 2 else ""
        raise DataError(
            f"{name}: 'spikes' has {array.ndim} dimension(s) {array.shape}; it must have 3: "
            f"(trials, time, neurons){hint}"
        )
    if array.size == 0:
        raise DataError(
            f"{name}: 'spikes' is empty (shape {array.shape}); it needs at least one trial, "
            "time bin and neuron"
        )
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{name}: 'spikes' has dtype {array.dtype}; it must hold numeric counts")
    if np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.signedinteger) and (array < 0).any():
            raise DataError(f"{name}: 'spikes' has negative values; spike counts must be >= 0")
        return array.astype(np.int64, copy=False)
    if not np.isfinite(array).all():
        raise DataError(f"{name}: 'spikes' has NaN or infinite values; spike counts must be finite")
    if (array < 0).any():
        raise DataError(f"{name}: 'spikes' has negative values; spike counts must be >= 0")
    rounded = np.rint(array)
    worst = float(np.abs(array - rounded).max())
    if worst > _INTEGER_TOLERANCE:
        raise DataError(
            f"{name}: 'spikes' holds non-integer values (off by up to {worst:.3g}); "
            "pass spike counts per bin, not rates"
        )
    return rounded.astype(np.int64)


def _check_counts_for_writing(spikes: np.ndarray) -> None:
    if spikes.ndim != 3 or spikes.size == 0:
        raise ValueError(f"spikes must be a non-empty (n, T, N) array, got shape {spikes.shape}")
    if not np.issubdtype(spikes.dtype, np.integer):
        raise ValueError(f"spikes must hold integer counts, got dtype {spikes.dtype}")
    if (spikes < 0).any():
        raise ValueError("spikes must be non-negative counts")


def _checked_conditions(
    trials_and_bins: tuple[int, ...], **given: np.ndarray | None
) -> dict[str, np.ndarray]:
    """The given conditions as their stored dtypes, checked against (n, T) (ValueError)."""
    n, num_bins = trials_and_bins
    expected = {
        "condition_angle": ((n,), np.float32),
        "condition_velocity": ((n, num_bins, 2), np.float32),
        "mask": ((n, num_bins), np.uint8),
    }
    out = {}
    for name, value in given.items():
        if value is None:
            continue
        shape, dtype = expected[name]
        value = np.asarray(value)
        if value.shape != shape:
            raise ValueError(
                f"{name} shape {value.shape} must be {shape} for (n, T) = {(n, num_bins)}"
            )
        if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric, got dtype {value.dtype}")
        if not np.isfinite(value).all():
            raise ValueError(f"{name} has NaN or infinite values")
        if name == "mask" and not np.isin(value, (0, 1)).all():
            raise ValueError("mask must hold only 0 and 1")
        out[name] = value.astype(dtype, copy=False)
    return out


def _check_bin_seconds(bin_seconds: float) -> None:
    if not (np.isfinite(bin_seconds) and bin_seconds > 0):
        raise ValueError(f"bin_seconds must be positive and finite, got {bin_seconds}")


def _spike_times(counts: np.ndarray, starts: np.ndarray, bin_seconds: float) -> np.ndarray:
    """Spike times of one neuron: counts (n, T) → sorted times, c spikes spread inside a bin."""
    trial, bins = np.nonzero(counts)  # C order: sorted by trial, then bin
    per_bin = counts[trial, bins].astype(np.int64)
    total = int(per_bin.sum())
    if total == 0:
        return np.zeros(0, dtype=np.float64)
    first = np.repeat(np.cumsum(per_bin) - per_bin, per_bin)
    rank = np.arange(total) - first  # j = 0 … c−1 within each bin
    count = np.repeat(per_bin, per_bin)
    within = (np.repeat(bins, per_bin) + (rank + 0.5) / count) * bin_seconds
    return np.repeat(starts[trial], per_bin) + within


def _parse_notes(notes: str | None, path: Path) -> dict[str, Any]:
    try:
        parsed = json.loads(notes or "")
    except json.JSONDecodeError:
        parsed = None
    if (
        not isinstance(parsed, dict)
        or parsed.get("format") != NWB_FORMAT
        or not isinstance(parsed.get("bin_seconds"), (int, float))
        or not isinstance(parsed.get("num_bins"), int)
    ):
        raise DataError(
            f"{path}: no neuralcli bin width in the NWB notes; only files written by "
            "`neuralcli sample` can be rebinned (for other NWB files, bin the spikes yourself "
            "and save them with np.savez(path, spikes=counts))"
        )
    return parsed
