"""Velocity on the paired datasets' grid: MakinRT cursor velocity, Flint hand velocity, z-scoring.

MakinRT (data-sources §7.1) defines its own grid: the cursor velocity is FFT-resampled to
~10 ms and trimmed to [first target change, last target change); the LFP is later interpolated
onto that grid. Flint (§7.2) interpolates the hand velocity onto a grid the LFP step made.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# scipy.signal is imported inside the functions that use it: it costs ~70 MB and ~1.5 s at import,
# and training commands load this module (through the dataset settings) without filtering.

TARGET_CHANGE_MODES = ("sum", "any")


class MakinKinematics(NamedTuple):
    """MakinRT cursor velocity on its FFT-resampled grid, trimmed to the task period."""

    grid_times: np.ndarray  # (n,) float64 start time of each kept bin, s
    velocity: np.ndarray  # (n, 2) float64 cursor velocity, position units per s, not z-scored
    keep: slice  # the kept bins [first change, last change) within the untrimmed grid
    target_change_bins: np.ndarray  # (m,) int64 untrimmed-grid bin of every detected change
    bin_seconds: float  # the grid's actual spacing: sample spacing * K / num_steps (>= 10 ms)


def makin_velocity(
    t: np.ndarray,
    cursor_pos: np.ndarray,
    target_pos: np.ndarray,
    *,
    bin_seconds: float = 0.01,
    target_change: str = "sum",
) -> MakinKinematics:
    """Cursor velocity of one MakinRT session on its ~`bin_seconds` grid (data-sources §7.1).

    t: (K,) sample times, s (250 Hz); cursor_pos, target_pos: (K, 2).
    target_change "sum" reproduces the original detection, a change where the per-sample sum
    Δx + Δy is non-zero, which misses a jump with Δx = -Δy (quirk 8b); "any" counts a change
    of either component. Raises ValueError when fewer than two target changes leave no bins.
    """
    from scipy import signal

    t = np.asarray(t, dtype=np.float64)
    cursor_pos = np.asarray(cursor_pos, dtype=np.float64)
    target_pos = np.asarray(target_pos, dtype=np.float64)
    n_samples = t.shape[0]
    if cursor_pos.shape != (n_samples, 2) or target_pos.shape != (n_samples, 2):
        raise ValueError(
            f"cursor_pos {cursor_pos.shape} and target_pos {target_pos.shape} must be "
            f"({n_samples}, 2) like t"
        )
    if target_change not in TARGET_CHANGE_MODES:
        raise ValueError(
            f"target_change must be one of {TARGET_CHANGE_MODES}, got {target_change!r}"
        )
    if n_samples < 2:
        raise ValueError(f"need at least 2 samples, got {n_samples}")

    # §7.1 step 1: the cursor, not the finger; central differences against the true times.
    velocity = np.gradient(cursor_pos, t, axis=0)  # (K, 2)
    # §7.1 step 2: FFT resample; scipy's grid is t0 + (t1 - t0)·(K/num)·i, slightly over 10 ms.
    num_steps = int((t[-1] - t[0]) / bin_seconds)
    if num_steps < 1:
        raise ValueError(f"{t[-1] - t[0]:.3f} s of samples is shorter than one bin")
    velocity, grid = signal.resample(velocity, num_steps, t=t, axis=0)  # (num, 2), (num,)
    # §7.1 step 3: sample i+1 starts a new target; floor-divide by the resampling ratio.
    jumps = np.diff(target_pos, axis=0)  # (K-1, 2)
    # NaN != 0 is True, so a NaN target counts as a change in both modes, as in the original.
    changed = jumps.sum(axis=1) != 0 if target_change == "sum" else np.any(jumps != 0, axis=1)
    change_samples = np.flatnonzero(changed) + 1  # (m,)
    change_bins = np.floor_divide(change_samples, n_samples / num_steps).astype(np.int64)
    if change_bins.size < 2 or change_bins[-1] <= change_bins[0]:
        raise ValueError(
            f"found {change_bins.size} target change(s); the task period between the first "
            "and last change is empty"
        )
    # §7.1 step 4: keep [first change, last change).
    keep = slice(int(change_bins[0]), int(change_bins[-1]))
    return MakinKinematics(
        grid_times=grid[keep],
        velocity=velocity[keep],
        keep=keep,
        target_change_bins=change_bins,
        bin_seconds=float((t[1] - t[0]) * n_samples / num_steps),
    )


def flint_velocity(times: np.ndarray, hand_velocity: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Flint hand velocity linearly interpolated onto `grid` (data-sources §7.2).

    times: (n,) concatenated trial times, s; hand_velocity: (n, 2) (HandVel[:, :2]);
    grid: (m,). Returns float64 (m, 2). Outside [times[0], times[-1]] the end values are held.
    Trials are concatenated without a gap check (quirk 9); if they overlap, the samples are
    stably sorted by time first, as an interpolator that sorts its input would do.
    """
    times = np.asarray(times, dtype=np.float64)
    hand_velocity = np.asarray(hand_velocity, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if hand_velocity.ndim != 2 or hand_velocity.shape[0] != times.shape[0]:
        raise ValueError(f"hand_velocity {hand_velocity.shape} must be ({times.shape[0]}, 2)")
    if np.any(np.diff(times) < 0):
        order = np.argsort(times, kind="stable")
        times, hand_velocity = times[order], hand_velocity[order]
    columns = [np.interp(grid, times, hand_velocity[:, d]) for d in range(2)]
    return np.stack(columns, axis=1)  # (m, 2)


def zscore(values: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
    """Z-score each column; a column with std 0 is only centred (its std counts as 1).

    values: (n, d) or (n,). `rows` (indices or a boolean mask) picks the rows whose mean and
    std are used; None uses every row, which reproduces the original whole-session statistics
    (quirk 6). Statistics in float64 (population std); returns a new float32 array.
    """
    values = np.asarray(values)
    out = values.astype(np.float32)  # a copy
    if rows is not None and np.asarray(rows).dtype == bool:
        rows = np.flatnonzero(rows)
    if rows is not None and np.size(rows) == 0:
        raise ValueError("no rows to take z-score statistics from")
    zscore_in_place(out.reshape(len(out), -1), rows=rows)
    return out


def zscore_in_place(
    values: np.ndarray, *, rows: np.ndarray | None = None, block_rows: int = 1 << 16
) -> np.ndarray:
    """Z-score the columns of float32 `values` (n, d) in place; returns `values`.

    Statistics in float64 over `rows` (indices; all rows when None), a std of 0 counts as 1;
    computed and applied in blocks of rows, so the float64 temporaries stay small whatever n
    is (a long session is never copied at full size).
    """
    if values.dtype != np.float32 or values.ndim != 2:
        raise ValueError(f"expected a 2-d float32 array, got {values.dtype} {values.shape}")
    index = np.arange(values.shape[0]) if rows is None else np.asarray(rows)
    if index.size == 0 or values.shape[1] == 0:
        return values
    blocks = [index[i : i + block_rows] for i in range(0, index.size, block_rows)]
    total = sum(values[b].sum(axis=0, dtype=np.float64) for b in blocks)
    mean = total / index.size  # (d,)
    squares = sum(((values[b] - mean) ** 2).sum(axis=0) for b in blocks)
    std = np.sqrt(squares / index.size)
    std[std == 0] = 1.0
    for start in range(0, values.shape[0], block_rows):
        block = values[start : start + block_rows]
        block[...] = (block - mean) / std
    return values
