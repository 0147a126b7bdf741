"""MC_Maze NWB files (DANDI 000128 and its scaled variants) -> the LDNS trial tensors.

Reimplements what nlb_tools does for LDNS (data-sources §3.1) with pynwb and numpy:

1. spikes on a 1 ms grid from t = 0: bin = trunc(round((t - t0) * 1000, 6)); bins outside the
   units' `obs_intervals` are NaN (the intervals of the first unit of each group, held-in and
   held-out, as nlb_tools does);
2. 5 ms bins sum 5 consecutive 1 ms bins; a 5 ms bin is NaN when its first 1 ms bin is;
3. `hand_vel` placed on the 1 ms grid (missing samples NaN), NaNs linearly interpolated
   (edges held), then decimated by 5 with a zero-phase FIR of order 500;
4. trials of NLB split train/val with a move onset, window [onset - 250, onset + 450) ms ->
   140 bins: the first bin is the first 5 ms grid point at or after onset - 250 ms; units
   held-in then held-out, each in file order;
5. velocity over the same window shifted by the lag (+100 ms for MC_Maze, +120 ms for the
   scaled variants in nlb_tools), in m/s (÷ 1000);
6. LDNS splits: all NLB-train + the first half of NLB-val -> train; the other half shuffled
   by `torch.randperm` with `torch.Generator().manual_seed(42)`: the first quarter -> val,
   the rest -> test (exactly what `torch.utils.data.random_split` with lengths
   [n // 4, n - n // 4] does; LDNS calls that);
7. reach angle atan2(v_y, v_x) at behaviour bin 50.

Where we differ from nlb_tools, on purpose:
- a trial whose spike window holds a NaN bin (outside `obs_intervals`) or runs past the
  recording is dropped after the split (nlb_tools would silently drop those time points and
  stack ragged trials); dropping after the split keeps every other trial's split;
- velocity bins whose 1 ms sample was missing keep their interpolated value (nlb_tools puts
  NaN back there); their number is reported;
- LDNS loads the train and the test file as one dataset, so `hand_vel` continues (held
  constant) past the train file's end before the FIR; we reproduce that by padding with the
  last sample rather than by reading the test file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from neuralcli.errors import DataError

MS_PER_SECOND = 1000
NS_PER_MS = 1_000_000
NLB_SPLITS = ("train", "val")


class McMazeUnits(NamedTuple):
    """The units table in file order."""

    ids: np.ndarray  # (U,) int64 NWB unit ids
    heldout: np.ndarray  # (U,) bool; all False in the test file
    spike_times: list[np.ndarray]  # per unit, seconds
    obs_intervals: list[np.ndarray] | None  # per unit (k, 2) seconds; None when absent


class McMazeTrials(NamedTuple):
    start_time: np.ndarray  # (n,) seconds
    stop_time: np.ndarray  # (n,) seconds
    move_onset_time: np.ndarray  # (n,) seconds, NaN where missing
    split: np.ndarray  # (n,) str: train | val | test | none


class McMazeBehaviour(NamedTuple):
    timestamps: np.ndarray  # (K,) seconds, nominally 1 kHz with gaps
    hand_vel: np.ndarray  # (K, 2) mm/s


class McMazeFile(NamedTuple):
    path: Path
    units: McMazeUnits
    trials: McMazeTrials
    behaviour: McMazeBehaviour | None  # None in the test file


class McMazeTensors(NamedTuple):
    """LDNS trial tensors, rows in LDNS order (train, then val, then test)."""

    spikes: np.ndarray  # (n, T, N) uint8 counts per bin
    velocity: np.ndarray  # (n, T, 2) float32 m/s
    trial: np.ndarray  # (n,) int64 row of the NWB trials table
    split: np.ndarray  # (n,) str train | val | test
    angle: np.ndarray  # (n,) float64 radians
    unit_names: list[str]  # N names, held-in first
    n_heldin: int
    dropped_trials: list[int]  # NWB trial rows dropped for NaN spike bins or short data
    velocity_gap_bins: int  # kept velocity bins whose 1 ms sample was missing


class LdnsSplit(NamedTuple):
    rows: np.ndarray  # (n,) int64 positions in the NLB-split array, LDNS order
    labels: np.ndarray  # (n,) str train | val | test


# --------------------------------------------------------------------------- reading


def read_mc_maze_nwb(path: str | os.PathLike) -> McMazeFile:
    """Units, trials and (train file only) hand velocity of one MC_Maze NWB file.

    DataError when the file cannot be opened or lacks the MC_Maze layout (data-sources §3).
    """
    from hdmf.build.errors import ConstructError
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; run `neuralcli data fetch mc_maze` first")
    remedy = "delete it and run `neuralcli data fetch mc_maze` again"
    try:
        with NWBHDF5IO(str(path), "r") as io:
            nwb = io.read()
            if nwb.units is None or nwb.trials is None:
                raise DataError(f"{path} has no units or trials table; {remedy}")
            units = _read_units(nwb.units)
            trials = _read_trials(nwb.trials)
            behaviour = _read_behaviour(nwb)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError, ConstructError) as exc:
        # ConstructError: pynwb could not rebuild an object (e.g. a broken timestamps link).
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is not a readable MC_Maze NWB file ({reason}); {remedy}") from None
    return McMazeFile(path=path, units=units, trials=trials, behaviour=behaviour)


def _ragged(table: Any, name: str) -> list[np.ndarray]:
    """A ragged column as one array per row, read in two slices rather than row by row."""
    index = table[name]  # a ragged column is looked up as its VectorIndex
    flat = np.asarray(index.target.data[()])
    ends = np.asarray(index.data[()], dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    return [flat[s:e] for s, e in zip(starts, ends, strict=True)]


def _read_units(units: Any) -> McMazeUnits:
    colnames = set(units.colnames)
    ids = np.asarray(units.id[()], dtype=np.int64)
    spike_times = [np.asarray(t, dtype=np.float64) for t in _ragged(units, "spike_times")]
    if "heldout" in colnames:
        heldout = np.asarray(units["heldout"].data[()], dtype=bool)
    else:
        heldout = np.zeros(len(ids), dtype=bool)
    obs = None
    if "obs_intervals" in colnames:
        obs = [
            np.asarray(iv, dtype=np.float64).reshape(-1, 2)
            for iv in _ragged(units, "obs_intervals")
        ]
    return McMazeUnits(ids=ids, heldout=heldout, spike_times=spike_times, obs_intervals=obs)


def _read_trials(trials: Any) -> McMazeTrials:
    def column(name: str) -> np.ndarray:
        return np.asarray(trials[name].data[()], dtype=np.float64)

    n = len(trials.id)
    onset = (
        column("move_onset_time") if "move_onset_time" in trials.colnames else np.full(n, np.nan)
    )
    if "split" in trials.colnames:
        raw = trials["split"].data[()]
        split = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in raw])
    else:
        split = np.full(n, "none")
    return McMazeTrials(
        start_time=column("start_time"),
        stop_time=column("stop_time"),
        move_onset_time=onset,
        split=split,
    )


def _read_behaviour(nwb: Any) -> McMazeBehaviour | None:
    module = nwb.processing.get("behavior")
    if module is None or "hand_vel" not in module.data_interfaces:
        return None
    series = module["hand_vel"]
    data = np.asarray(series.data[()], dtype=np.float64)
    if series.timestamps is not None:
        timestamps = np.asarray(series.timestamps[()], dtype=np.float64)
    else:
        timestamps = series.starting_time + np.arange(data.shape[0]) / series.rate
    return McMazeBehaviour(timestamps=timestamps, hand_vel=data[:, :2])


# --------------------------------------------------------------------------- binning


def spike_bin_indices(spike_times: np.ndarray, *, t0: float = 0.0) -> np.ndarray:
    """1 ms bin of each spike: trunc(round((t - t0) * 1000, 6)) (data-sources §3.1 step 1).

    The rounding to 6 decimals first keeps 0.0049999999 s in bin 5, as nlb_tools does.
    """
    return np.round((np.asarray(spike_times) - t0) * MS_PER_SECOND, 6).astype(np.int64)


def bin_spikes_1ms(spike_times: np.ndarray, n_bins: int, *, t0: float = 0.0) -> np.ndarray:
    """(n_bins,) int64 spike counts on the 1 ms grid; spikes off the grid are ignored."""
    index = spike_bin_indices(spike_times, t0=t0)
    index = index[(index >= 0) & (index < n_bins)]
    return np.bincount(index, minlength=n_bins)


def observed_bins(obs_intervals: np.ndarray | None, n_bins: int, *, t0: float = 0.0) -> np.ndarray:
    """(n_bins,) bool: True for 1 ms bins inside the observation intervals.

    An interval [a, b] covers bins ceil(round(a*1000, 6)) .. floor(round(b*1000, 6)) - 1 (the
    rule nlb_tools uses to NaN out the rest). None: every bin is observed.
    """
    if obs_intervals is None:
        return np.ones(n_bins, dtype=bool)
    mask = np.zeros(n_bins, dtype=bool)
    for start, end in np.asarray(obs_intervals, dtype=np.float64).reshape(-1, 2):
        low = int(np.ceil(round((start - t0) * MS_PER_SECOND, 6)))
        high = int(np.floor(round((end - t0) * MS_PER_SECOND, 6)))
        mask[min(max(low, 0), n_bins) : min(max(high, 0), n_bins)] = True
    return mask


def rebin_counts(counts: np.ndarray, factor: int) -> np.ndarray:
    """Sum `factor` consecutive bins along axis 0 (a short tail is summed too).

    (n, ...) float with NaN -> (ceil(n / factor), ...): a coarse bin is NaN exactly when its
    first fine bin is (nlb_tools `resample`), otherwise the sum of its non-NaN fine bins.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.shape[0]
    n_out = -(-n // factor)
    padded = np.zeros((n_out * factor, *counts.shape[1:]))
    padded[:n] = np.nan_to_num(counts, nan=0.0)
    summed = padded.reshape(n_out, factor, *counts.shape[1:]).sum(axis=1)
    summed[np.isnan(counts[::factor])] = np.nan
    return summed


def grid_length_ms(units: McMazeUnits, trials: McMazeTrials) -> int:
    """Number of 1 ms bins of the session grid: up to the latest observation-interval end
    (nlb_tools), or the last trial's stop when the file has no intervals."""
    if units.obs_intervals:
        ends = [float(iv[-1, 1]) for iv in units.obs_intervals if len(iv)]
        if ends:
            return int(round(max(ends) * MS_PER_SECOND))
    return int(round(float(np.nanmax(trials.stop_time)) * MS_PER_SECOND))


def velocity_on_grid(
    timestamps: np.ndarray, values: np.ndarray, n_bins: int, *, t0: float = 0.0
) -> np.ndarray:
    """(n_bins, d) float64: samples at their nearest 1 ms bin, NaN where none landed."""
    grid = np.full((n_bins, values.shape[1]), np.nan)
    index = np.round((np.asarray(timestamps) - t0) * MS_PER_SECOND).astype(np.int64)
    keep = (index >= 0) & (index < n_bins)
    grid[index[keep]] = values[keep]
    return grid


def fill_gaps(grid: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN rows per column; leading/trailing NaNs take the nearest
    value (pandas `interpolate(limit_direction="both")` on a regular grid)."""
    out = np.array(grid, dtype=np.float64, copy=True)
    positions = np.arange(out.shape[0])
    for column in range(out.shape[1]):
        values = out[:, column]
        missing = np.isnan(values)
        if missing.all():
            raise DataError("hand_vel has no valid sample; the file's behaviour is empty")
        if missing.any():
            values[missing] = np.interp(positions[missing], positions[~missing], values[~missing])
    return out


def decimate_velocity(velocity: np.ndarray, factor: int, *, fir_order: int = 500) -> np.ndarray:
    """(n, d) 1 ms samples -> (ceil(n / factor), d): zero-phase FIR of order `fir_order`,
    row k at sample k * factor (scipy `decimate(..., ftype="fir", zero_phase=True)`).

    The end is padded with the last sample first, as the stacked train+test data that LDNS
    decimates continues with held values past the train file (see the module docstring).
    """
    from scipy.signal import decimate

    n = velocity.shape[0]
    pad = np.repeat(velocity[-1:], fir_order, axis=0)
    padded = np.concatenate([velocity, pad], axis=0)
    out = decimate(padded, factor, n=fir_order, ftype="fir", zero_phase=True, axis=0)
    return out[: -(-n // factor)]


def window_start_bins(align_seconds: np.ndarray, offset_ms: int, bin_ms: int) -> np.ndarray:
    """(n,) int64 first bin of each window: the first `bin_ms` grid point at or after
    align + offset, computed in integer nanoseconds as pandas timedeltas do."""
    align_ns = np.round(np.asarray(align_seconds, dtype=np.float64) * 1e9).astype(np.int64)
    start_ns = align_ns + int(offset_ms) * NS_PER_MS
    return -((-start_ns) // (int(bin_ms) * NS_PER_MS))


def ldns_split(nlb_split: Sequence[str] | np.ndarray, *, seed: int = 42) -> LdnsSplit:
    """LDNS train/val/test over trials labelled NLB "train"/"val" (data-sources §3.1 step 6).

    train = every NLB-train trial then the first half (n // 2) of the NLB-val trials, in
    order; the other half is permuted by `torch.randperm(m, generator=manual_seed(seed))`:
    its first m // 4 -> val, the rest -> test. For 1721 + 574 trials: 2008 / 71 / 216.
    """
    import torch

    labels = np.asarray(nlb_split).astype(str)
    train = np.flatnonzero(labels == "train")
    val = np.flatnonzero(labels == "val")
    half = len(val) // 2
    rest = val[half:]
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(len(rest), generator=generator).numpy()
    n_val = len(rest) // 4
    rows = np.concatenate([train, val[:half], rest[perm]]).astype(np.int64)
    names = ["train"] * (len(train) + half) + ["val"] * n_val + ["test"] * (len(rest) - n_val)
    return LdnsSplit(rows=rows, labels=np.array(names))


def reach_angle(velocity: np.ndarray, bin_index: int = 50) -> np.ndarray:
    """(n, T, 2) -> (n,) float64 atan2(v_y, v_x) at one bin, in radians (LDNS: bin 50, ~100 ms
    after onset; data-sources §3.1 step 7). Computed in float64 whatever the input dtype."""
    at = np.asarray(velocity[:, bin_index], dtype=np.float64)  # (n, 2)
    return np.arctan2(at[:, 1], at[:, 0])


def unit_names(units: McMazeUnits) -> list[str]:
    """Held-in units then held-out units, each in file order, marked by group."""
    order = np.concatenate([np.flatnonzero(~units.heldout), np.flatnonzero(units.heldout)])
    return [f"{'heldout' if units.heldout[i] else 'heldin'}_{int(units.ids[i]):03d}" for i in order]


# --------------------------------------------------------------------------- tensors


def make_ldns_tensors(
    train_file: McMazeFile,
    *,
    bin_ms: int = 5,
    window_ms: tuple[int, int] = (-250, 450),
    lag_ms: int = 100,
    seed: int = 42,
    velocity_scale: float = 1e-3,
    angle_bin: int = 50,
    fir_order: int = 500,
    on_progress: Callable[[int, int], None] | None = None,
) -> McMazeTensors:
    """The LDNS tensors of the NWB train file (data-sources §3.1).

    Returns spikes (n, T, N) with T = (window_ms[1] - window_ms[0]) / bin_ms and N = held-in +
    held-out units; `on_progress(done, total)` counts binned units.
    """
    units, trials = train_file.units, train_file.trials
    if train_file.behaviour is None:
        raise DataError(
            f"{train_file.path} has no processing/behavior/hand_vel; is it the test file? "
            "Segment the *_desc-train_behavior+ecephys.nwb file"
        )
    n_steps = (window_ms[1] - window_ms[0]) // bin_ms
    candidates = np.flatnonzero(
        np.isin(trials.split, NLB_SPLITS) & np.isfinite(trials.move_onset_time)
    )
    if candidates.size == 0:
        if not np.isfinite(trials.move_onset_time).any():
            raise DataError(
                f"{train_file.path}: the trials table has no move_onset_time; segment the "
                "*_desc-train_behavior+ecephys.nwb file of DANDI 000128 (or a scaled variant)"
            )
        raise DataError(f"{train_file.path} has no train/val trials with a move onset")
    split = ldns_split(trials.split[candidates], seed=seed)
    trial_rows = candidates[split.rows]
    onset = trials.move_onset_time[trial_rows]

    n_ms = grid_length_ms(units, trials)
    n_bins = -(-n_ms // bin_ms)
    offsets = np.arange(n_steps)
    spike_index = window_start_bins(onset, window_ms[0], bin_ms)[:, None] + offsets  # (n, T)
    velocity_index = window_start_bins(onset, window_ms[0] + lag_ms, bin_ms)[:, None] + offsets
    bad = _outside(spike_index, n_bins) | _outside(velocity_index, n_bins)
    spike_index = np.clip(spike_index, 0, n_bins - 1)
    velocity_index = np.clip(velocity_index, 0, n_bins - 1)

    heldin = np.flatnonzero(~units.heldout)
    heldout = np.flatnonzero(units.heldout)
    order = np.concatenate([heldin, heldout])
    for group in (heldin, heldout):
        if group.size:
            intervals = None if units.obs_intervals is None else units.obs_intervals[group[0]]
            observed = observed_bins(intervals, n_ms)[::bin_ms]  # (n_bins,) §3.1 step 2 NaN rule
            bad |= ~observed[spike_index].all(axis=1)

    spikes = np.zeros((len(trial_rows), n_steps, len(order)), dtype=np.uint8)
    for column, unit in enumerate(order):
        index = spike_bin_indices(units.spike_times[unit])
        index = index[(index >= 0) & (index < n_ms)] // bin_ms
        counts = np.bincount(index, minlength=n_bins)[spike_index]  # (n, T)
        if counts.max(initial=0) > np.iinfo(np.uint8).max:
            raise DataError(
                f"{train_file.path}: unit {int(units.ids[unit])} has more than 255 spikes in "
                f"one {bin_ms} ms bin; the file's spike times look wrong"
            )
        spikes[:, :, column] = counts
        if on_progress is not None:
            on_progress(column + 1, len(order))

    behaviour = train_file.behaviour
    grid = velocity_on_grid(behaviour.timestamps, behaviour.hand_vel, n_ms)  # (n_ms, 2) mm/s
    gaps = np.isnan(grid[::bin_ms]).any(axis=1)  # (n_bins,) where nlb_tools leaves NaN
    velocity_5ms = decimate_velocity(fill_gaps(grid), bin_ms, fir_order=fir_order)
    velocity = (velocity_5ms[velocity_index] * velocity_scale).astype(np.float32)  # (n, T, 2)

    keep = ~bad
    velocity = velocity[keep]
    return McMazeTensors(
        spikes=spikes[keep],
        velocity=velocity,
        trial=trial_rows[keep].astype(np.int64),
        split=split.labels[keep],
        angle=reach_angle(velocity, angle_bin),
        unit_names=unit_names(units),
        n_heldin=int(heldin.size),
        dropped_trials=sorted(int(r) for r in trial_rows[bad]),
        velocity_gap_bins=int(gaps[velocity_index[keep]].sum()),
    )


def _outside(index: np.ndarray, n_bins: int) -> np.ndarray:
    """(n, T) -> (n,) True where any bin of the window lies off the grid."""
    return ((index < 0) | (index >= n_bins)).any(axis=1)
