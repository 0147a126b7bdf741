"""MakinRT cursor velocity, Flint hand velocity and z-scoring (data-sources §7)."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcli.data.preprocess.kinematics import (
    flint_velocity,
    makin_velocity,
    zscore,
    zscore_in_place,
)

K = 2500  # 10 s at 250 Hz


def _session(change_samples, jumps, *, speed=(3.0, -1.5)):
    t = 100.0 + 0.004 * np.arange(K)
    cursor = np.outer(t - t[0], speed)  # (K, 2) constant velocity
    target = np.zeros((K, 2))
    for sample, jump in zip(change_samples, jumps, strict=True):
        target[sample:] += jump
    return t, cursor, target


def test_constant_velocity_cursor_is_constant_on_the_grid() -> None:
    t, cursor, target = _session([300, 2000], [(1.0, 0.0), (0.0, 2.0)])
    out = makin_velocity(t, cursor, target)
    assert out.velocity.dtype == np.float64
    np.testing.assert_allclose(out.velocity, np.tile([3.0, -1.5], (len(out.grid_times), 1)))


def test_grid_spacing_is_sample_spacing_times_k_over_num_steps() -> None:
    t, cursor, target = _session([300, 2000], [(1.0, 0.0), (0.0, 2.0)])
    out = makin_velocity(t, cursor, target)
    num_steps = int((t[-1] - t[0]) / 0.01)  # 999: slightly above 10 ms per bin
    assert num_steps == 999
    assert out.bin_seconds == pytest.approx(0.004 * K / num_steps)
    assert out.bin_seconds > 0.01
    np.testing.assert_allclose(np.diff(out.grid_times), out.bin_seconds)
    # The grid starts at t[0]; the kept part starts at the first change's bin.
    assert out.grid_times[0] == pytest.approx(t[0] + out.keep.start * out.bin_seconds)


def test_trim_points_are_the_target_changes_on_the_new_grid() -> None:
    changes = [300, 1234, 2000]
    t, cursor, target = _session(changes, [(1.0, 0.0), (0.5, 0.5), (0.0, -2.0)])
    out = makin_velocity(t, cursor, target)
    ratio = K / 999
    expected = [int(np.floor(c / ratio)) for c in changes]
    np.testing.assert_array_equal(out.target_change_bins, expected)
    assert out.keep == slice(expected[0], expected[-1])
    assert len(out.grid_times) == len(out.velocity) == expected[-1] - expected[0]


def test_sum_mode_misses_a_jump_with_dx_equal_minus_dy() -> None:
    # The last change moves the target by (+1, -1): its sum is 0, so "sum" (quirk 8b) misses
    # it and keeps the session up to the middle change instead.
    t, cursor, target = _session([300, 1234, 2000], [(1.0, 0.0), (0.0, 1.0), (1.0, -1.0)])
    ratio = K / 999
    first, middle, last = (int(np.floor(c / ratio)) for c in (300, 1234, 2000))
    summed = makin_velocity(t, cursor, target, target_change="sum")
    assert summed.keep == slice(first, middle)
    anyway = makin_velocity(t, cursor, target, target_change="any")
    assert anyway.keep == slice(first, last)
    with pytest.raises(ValueError, match="target_change"):
        makin_velocity(t, cursor, target, target_change="max")


def test_too_few_target_changes_is_an_error() -> None:
    t, cursor, target = _session([300], [(1.0, 0.0)])
    with pytest.raises(ValueError, match="target change"):
        makin_velocity(t, cursor, target)


def test_flint_velocity_interpolates_linearly() -> None:
    times = np.arange(0, 1.0, 0.01)  # 100 Hz
    hand = np.stack([times * 2.0, np.ones_like(times)], axis=1)
    grid = np.linspace(0.0, 0.98, 37)
    out = flint_velocity(times, hand, grid)
    np.testing.assert_allclose(out, np.stack([grid * 2.0, np.ones_like(grid)], axis=1))
    # Concatenated trials out of order are sorted before interpolating.
    order = np.r_[50:100, 0:50]
    np.testing.assert_allclose(flint_velocity(times[order], hand[order], grid), out)


def test_zscore_whole_session_and_train_rows() -> None:
    rng = np.random.default_rng(0)
    values = np.stack([rng.normal(5, 3, 200), np.full(200, 7.0)], axis=1)
    out = zscore(values)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(out[:, 0].std(), 1, atol=1e-5)
    np.testing.assert_array_equal(out[:, 1], 0)  # std 0 -> 1: centred only
    rows = np.arange(100)
    train_only = zscore(values, rows=rows)
    np.testing.assert_allclose(train_only[rows, 0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(train_only[rows, 0].std(), 1, atol=1e-5)
    mask = np.zeros(200, dtype=bool)
    mask[:100] = True
    np.testing.assert_array_equal(zscore(values, rows=mask), train_only)


def test_zscore_in_place_equals_the_float64_recipe():
    rng = np.random.default_rng(0)
    values = (rng.normal(3.0, 2.0, size=(1000, 5)) * [1, 10, 100, 0, 1]).astype(np.float32)

    def recipe(reference: np.ndarray) -> np.ndarray:
        mean = reference.astype(np.float64).mean(axis=0)
        std = reference.astype(np.float64).std(axis=0)
        std[std == 0] = 1.0
        return ((values - mean) / std).astype(np.float32)

    out = zscore_in_place(values.copy(), block_rows=64)
    np.testing.assert_allclose(out, recipe(values), rtol=1e-6, atol=1e-6)
    rows = np.arange(0, 1000, 3)
    np.testing.assert_allclose(
        zscore_in_place(values.copy(), rows=rows, block_rows=50),
        recipe(values[rows]),
        rtol=1e-6,
        atol=1e-6,
    )


def test_zscore_in_place_refuses_other_dtypes():
    with pytest.raises(ValueError, match="float32"):
        zscore_in_place(np.zeros((3, 2)))
