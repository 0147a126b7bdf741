"""Spike-time binning on the paired grid and the unit-rate filter."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcli.data.preprocess.spikes import bin_spike_times, select_units, unit_rates_hz


def test_bin_edges_are_left_closed_right_open() -> None:
    start, width = 2.0, 0.25
    # Exact binary fractions so every edge is representable: 2.0, 2.25, 2.5, 2.75, 3.0.
    times = np.array([1.99, 2.0, 2.2499, 2.25, 2.5, 2.9999, 3.0, 3.5])
    counts = bin_spike_times([times], start=start, bin_seconds=width, n_bins=4)
    assert counts.dtype == np.uint8
    assert counts.shape == (4, 1)
    # 1.99 is before the grid; 3.0 and 3.5 are at/after its end.
    np.testing.assert_array_equal(counts[:, 0], [2, 1, 1, 1])


def test_units_are_columns_and_order_does_not_matter() -> None:
    rng = np.random.default_rng(0)
    units = [rng.uniform(0, 1, size=n) for n in (0, 5, 40)]
    shuffled = [rng.permutation(t) for t in units]
    counts = bin_spike_times(shuffled, start=0.0, bin_seconds=0.01, n_bins=100)
    assert counts.shape == (100, 3)
    np.testing.assert_array_equal(counts.sum(axis=0), [0, 5, 40])
    expected = np.stack([np.histogram(t, bins=100, range=(0, 1))[0] for t in units], axis=1)
    np.testing.assert_array_equal(counts, expected)


def test_spikes_on_inexact_edges_follow_the_documented_edges() -> None:
    # 0.01 s is not a binary fraction: division alone can put an edge spike one bin off.
    start, width, n_bins = 123.456, 0.01, 5000
    edges = start + width * np.arange(n_bins + 1)
    rng = np.random.default_rng(2)
    times = np.concatenate([edges, rng.uniform(start - 1, edges[-1] + 1, size=20000)])
    times = np.concatenate([times, np.nextafter(edges, -np.inf)])  # just below every edge
    counts = bin_spike_times([times], start=start, bin_seconds=width, n_bins=n_bins)
    index = np.searchsorted(edges, times, side="right") - 1
    expected = np.bincount(index[(index >= 0) & (index < n_bins)], minlength=n_bins)
    np.testing.assert_array_equal(counts[:, 0], expected)


def test_nan_spike_times_are_ignored() -> None:
    times = np.array([np.nan, 0.5, np.inf, -np.inf, 1e300])
    counts = bin_spike_times([times], start=0.0, bin_seconds=1.0, n_bins=1)
    assert counts[0, 0] == 1


def test_counts_saturate_at_255() -> None:
    burst = np.full(300, 0.005)
    counts = bin_spike_times([burst, burst[:7]], start=0.0, bin_seconds=0.01, n_bins=2)
    np.testing.assert_array_equal(counts, [[255, 7], [0, 0]])


def test_empty_inputs() -> None:
    assert bin_spike_times([], start=0.0, bin_seconds=0.01, n_bins=5).shape == (5, 0)
    assert bin_spike_times([np.array([0.1])], start=0.0, bin_seconds=0.01, n_bins=0).shape == (
        0,
        1,
    )
    with pytest.raises(ValueError, match="bin_seconds"):
        bin_spike_times([np.array([0.1])], start=0.0, bin_seconds=0.0, n_bins=3)


def test_unit_rates_and_rate_filter() -> None:
    bin_seconds = 0.01
    counts = np.zeros((1000, 3), dtype=np.uint8)  # 10 s
    counts[::100, 0] = 1  # 10 spikes in 10 s: 1 Hz, kept (threshold is "< 1 Hz")
    counts[::200, 1] = 1  # 0.5 Hz, dropped
    counts[:, 2] = 1  # 100 Hz
    np.testing.assert_allclose(unit_rates_hz(counts, bin_seconds), [1.0, 0.5, 100.0])
    kept, names = select_units(counts, ["a", "b", "c"], min_rate_hz=1.0, bin_seconds=bin_seconds)
    assert names == ["a", "c"]
    np.testing.assert_array_equal(kept, counts[:, [0, 2]])
    assert kept.dtype == np.uint8
    with pytest.raises(ValueError, match="unit names"):
        select_units(counts, ["a"], min_rate_hz=1.0, bin_seconds=bin_seconds)
