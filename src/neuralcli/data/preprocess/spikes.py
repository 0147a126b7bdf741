"""Spike times -> counts on the paired datasets' 10 ms grid, and the unit-rate filter.

Binning the MakinRT / Flint spikes for the spike teacher is our design (data-sources §8): every
unit's spike times are counted on the same grid as the LFP and kinematics, bin i covering
[start + i·Δ, start + (i+1)·Δ). Units firing below a rate threshold (the reproduction's 1 Hz)
are dropped afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

COUNT_MAX = 255  # uint8 storage; 10 ms bins never come close (the tokenizer clamps at 5)


def bin_spike_times(
    spike_times: Sequence[np.ndarray], *, start: float, bin_seconds: float, n_bins: int
) -> np.ndarray:
    """Count each unit's spikes in `n_bins` bins of `bin_seconds` from `start`.

    Bin i is [start + i·bin_seconds, start + (i+1)·bin_seconds): left edge inclusive, right edge
    exclusive; spikes outside [start, start + n_bins·bin_seconds) and NaN times are ignored.
    Spike times need not be sorted (Flint pools them across trials). Counts saturate at 255.

    spike_times: one 1-d array of times (s) per unit, length n_units.
    Returns uint8 (n_bins, n_units).
    """
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be positive, got {bin_seconds}")
    if n_bins < 0:
        raise ValueError(f"n_bins must be >= 0, got {n_bins}")
    n_units = len(spike_times)
    by_unit = np.zeros((n_units, n_bins), dtype=np.uint8)  # unit-major: contiguous per unit
    for unit, times in enumerate(spike_times):
        bins = _bin_index(np.asarray(times, dtype=np.float64).ravel(), start, bin_seconds)
        bins = bins[(bins >= 0) & (bins < n_bins)]  # (S,)
        by_unit[unit] = np.minimum(np.bincount(bins, minlength=n_bins), COUNT_MAX)
    return np.ascontiguousarray(by_unit.T)  # (n_bins, n_units)


def unit_rates_hz(counts: np.ndarray, bin_seconds: float) -> np.ndarray:
    """Mean firing rate of each unit: counts (n_bins, n_units) -> float64 (n_units,) in Hz."""
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be positive, got {bin_seconds}")
    if counts.shape[0] == 0:
        return np.zeros(counts.shape[1], dtype=np.float64)
    return counts.mean(axis=0, dtype=np.float64) / bin_seconds


def select_units(
    counts: np.ndarray, names: Sequence[str], *, min_rate_hz: float, bin_seconds: float
) -> tuple[np.ndarray, list[str]]:
    """Drop units whose mean rate is below `min_rate_hz` (the reproduction's "< 1 Hz").

    counts: (n_bins, n_units); names: (n_units,). Returns the kept (n_bins, n_kept) counts, in
    the same dtype and column order, and their names.
    """
    if len(names) != counts.shape[1]:
        raise ValueError(f"{len(names)} unit names for {counts.shape[1]} count columns")
    keep = np.flatnonzero(unit_rates_hz(counts, bin_seconds) >= min_rate_hz)
    return counts[:, keep], [str(names[i]) for i in keep]


def _bin_index(times: np.ndarray, start: float, bin_seconds: float) -> np.ndarray:
    """Bin i with start + i·Δ <= t < start + (i+1)·Δ for each finite time (S,) -> int64.

    Division gives the bin up to rounding; one comparison against the edges as documented
    (computed as start + Δ·i) fixes the last ulp. For 200 units x 1 h at 15 Hz on 10 ms bins
    this took 0.1-0.25 s against 1.5 s (sorted times) to 7 s (unsorted) for np.searchsorted
    over the edges, on a loaded 2-core machine.
    """
    times = times[np.isfinite(times)]  # (S,)
    guess = np.floor((times - start) / bin_seconds)  # (S,) float
    guess = np.clip(guess, -2.0, np.iinfo(np.int32).max)  # far outliers stay out of range
    guess -= times < start + bin_seconds * guess
    guess += times >= start + bin_seconds * (guess + 1)
    return guess.astype(np.int64)
