"""Segmentation, the original per-session split rule and the Flint outlier filter (§9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralcli.data.recording import PairedRecording
from neuralcli.data.segment import (
    SegmentSettings,
    segment_recording,
    split_labels,
    velocity_outliers,
)


def _pandas_split(n: int, *, val_ratio=0.1, test_ratio=0.1, seed=42) -> np.ndarray:
    """The original rule, written with pandas as the original pipeline does it."""
    frame = pd.DataFrame({"parent": np.arange(n)}).sample(frac=1, random_state=seed)
    frame = frame.reset_index(drop=True)
    val_size, test_size = int(val_ratio * n), int(test_ratio * n)
    frame["split"] = "train"
    frame.loc[: val_size - 1, "split"] = "val"
    frame.loc[val_size : val_size + test_size, "split"] = "test"
    return frame.sort_values("parent")["split"].to_numpy().astype(str)


def _recording(n_bins: int, *, n_channels=3, n_units=4, seed=0, bin_seconds=0.01):
    rng = np.random.default_rng(seed)
    times = 50.0 + bin_seconds * np.arange(n_bins)
    # Every stream encodes its bin index so tests can see which rows a segment took.
    index = np.arange(n_bins, dtype=np.float32)[:, None]
    return PairedRecording(
        dataset="flint",
        session="e1_1",
        times=times,
        lfp=index + np.arange(n_channels, dtype=np.float32) / 10,
        spikes=(np.arange(n_bins)[:, None] % 256 * np.ones(n_units)).astype(np.uint8),
        velocity=rng.normal(size=(n_bins, 2)).astype(np.float32),
        channel_names=[f"ch{i}" for i in range(n_channels)],
        unit_names=[f"u{i}" for i in range(n_units)],
        bin_seconds=bin_seconds,
    )


def test_pandas_sample_is_a_randomstate_permutation() -> None:
    for n in (1, 7, 37, 100):
        shuffled = pd.DataFrame({"row": np.arange(n)}).sample(frac=1, random_state=42)
        np.testing.assert_array_equal(
            shuffled["row"].to_numpy(), np.random.RandomState(42).permutation(n)
        )


@pytest.mark.parametrize("n", [0, 1, 7, 10, 11, 37, 100, 253])
def test_split_labels_match_the_pandas_reference(n: int) -> None:
    labels = split_labels(n, val_ratio=0.1, test_ratio=0.1, seed=42)
    np.testing.assert_array_equal(labels, _pandas_split(n))
    counts = {name: int(np.sum(labels == name)) for name in ("train", "val", "test")}
    assert counts["val"] == int(0.1 * n)
    assert counts["test"] == min(int(0.1 * n) + 1, n)  # label-inclusive .loc: one extra
    assert sum(counts.values()) == n


def test_split_labels_other_ratios_and_seeds_match_pandas() -> None:
    for n, val, test, seed in [(20, 0.25, 0.25, 0), (9, 0.5, 0.5, 3), (50, 0.2, 0.1, 7)]:
        np.testing.assert_array_equal(
            split_labels(n, val_ratio=val, test_ratio=test, seed=seed),
            _pandas_split(n, val_ratio=val, test_ratio=test, seed=seed),
        )


def test_zero_test_ratio_gives_no_test_rows() -> None:
    labels = split_labels(30, val_ratio=0.1, test_ratio=0.0, seed=42)
    assert np.sum(labels == "test") == 0
    assert np.sum(labels == "val") == 3
    with pytest.raises(ValueError, match="sum to"):
        split_labels(10, val_ratio=0.6, test_ratio=0.6, seed=0)


def test_settings_validate_lengths() -> None:
    settings = SegmentSettings()
    assert (settings.parent_bins, settings.segment_bins, settings.segments_per_parent) == (
        1000,
        500,
        2,
    )
    assert settings.to_dict()["velocity_outlier_iqr"] is None
    with pytest.raises(ValueError, match="divide"):
        SegmentSettings(segment_seconds=3.0)
    with pytest.raises(ValueError, match="whole number"):
        SegmentSettings(segment_seconds=0.005)


def test_segments_halve_parents_and_inherit_their_split() -> None:
    settings = SegmentSettings(parent_seconds=1.0, segment_seconds=0.5)  # 100 / 50 bins
    recording = _recording(2345)  # 23 parents, 45 remainder bins dropped
    out = segment_recording(recording, settings)
    table = out.segments
    assert out.parents_total == 23 and out.outliers_dropped == 0 and out.remainder_bins == 45
    assert out.lfp.shape == (46, 50, 3) and out.lfp.dtype == np.float32
    assert out.spikes.shape == (46, 50, 4) and out.spikes.dtype == np.uint8
    assert out.velocity.shape == (46, 50, 2) and out.velocity.dtype == np.float32
    np.testing.assert_array_equal(table["segment_id"], np.arange(46))
    np.testing.assert_array_equal(table["parent_id"], np.arange(46) // 2)
    np.testing.assert_array_equal(table["original_parent"], np.arange(46) // 2)
    # MakinRT: segment sid covers (sid//2)·parent + (sid%2)·segment of the trimmed session.
    np.testing.assert_array_equal(table["start_bin"], np.arange(46) * 50)
    np.testing.assert_allclose(table["start_time"], recording.times[table["start_bin"]])
    np.testing.assert_array_equal(out.lfp[:, :, 0], table["start_bin"][:, None] + np.arange(50))
    np.testing.assert_array_equal(
        out.spikes[:, :, 0], (table["start_bin"][:, None] + np.arange(50)) % 256
    )
    parent_split = split_labels(23, val_ratio=0.1, test_ratio=0.1, seed=42)
    np.testing.assert_array_equal(table["split"][0::2], parent_split)
    np.testing.assert_array_equal(table["split"][1::2], parent_split)


def test_velocity_outliers_flag_high_variance() -> None:
    rng = np.random.default_rng(0)
    segments = rng.normal(size=(20, 100, 2))
    segments[7] *= 10
    mask = velocity_outliers(segments, 1.5)
    assert mask.tolist() == [i == 7 for i in range(20)]
    assert velocity_outliers(np.zeros((0, 100, 2)), 1.5).shape == (0,)


def test_flint_outlier_parent_is_dropped_and_survivors_reindexed() -> None:
    settings = SegmentSettings(parent_seconds=1.0, segment_seconds=0.5, velocity_outlier_iqr=1.5)
    recording = _recording(2000)  # 20 parents
    recording.velocity[500:600] *= 25  # parent 5 is a noisy, non-controlling period
    out = segment_recording(recording, settings)
    table = out.segments
    assert out.parents_total == 20 and out.outliers_dropped == 1
    survivors = np.r_[0:5, 6:20]
    np.testing.assert_array_equal(table["parent_id"], np.repeat(np.arange(19), 2))
    np.testing.assert_array_equal(table["segment_id"], np.arange(38))
    np.testing.assert_array_equal(table["original_parent"], np.repeat(survivors, 2))
    # The stored rows are the original time positions, so spikes and LFP stay paired.
    np.testing.assert_array_equal(
        table["start_bin"], np.repeat(survivors, 2) * 100 + np.tile([0, 50], 19)
    )
    np.testing.assert_array_equal(out.lfp[:, 0, 0], table["start_bin"])
    # Splits are drawn over the 19 survivors.
    np.testing.assert_array_equal(table["split"][::2], split_labels(19, seed=42))


def test_short_recording_gives_no_segments_and_wrong_grid_is_refused() -> None:
    settings = SegmentSettings(parent_seconds=2.0, segment_seconds=1.0)
    out = segment_recording(_recording(150), settings)
    assert out.lfp.shape == (0, 100, 3) and out.segments["split"].shape == (0,)
    assert out.remainder_bins == 150
    with pytest.raises(ValueError, match="grid spacing"):
        segment_recording(_recording(3000, bin_seconds=0.02), SegmentSettings())
