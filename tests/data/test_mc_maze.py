"""MC_Maze NWB -> LDNS tensors (data-sources §3.1), on tiny files in the MC_Maze layout."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import torch

from neuralcli.data.mc_maze_dataset import (
    McMazeSettings,
    mc_maze_asset_paths,
    mc_maze_settings_dict,
    settings_from_dict,
)
from neuralcli.data.sources.mc_maze import (
    McMazeFile,
    bin_spikes_1ms,
    decimate_velocity,
    fill_gaps,
    ldns_split,
    make_ldns_tensors,
    observed_bins,
    reach_angle,
    read_mc_maze_nwb,
    rebin_counts,
    spike_bin_indices,
    velocity_on_grid,
    window_start_bins,
)
from neuralcli.data.store import settings_hash
from neuralcli.errors import ConfigError, DataError
from neuralcli.testing.mc_maze_layout import (
    FakeMcMazeSession,
    fake_mc_maze_session,
    write_mc_maze_test_nwb,
    write_mc_maze_train_nwb,
)


@pytest.fixture(scope="module")
def session() -> FakeMcMazeSession:
    return fake_mc_maze_session()


@pytest.fixture(scope="module")
def files(session: FakeMcMazeSession, tmp_path_factory) -> tuple[McMazeFile, McMazeFile]:
    root = tmp_path_factory.mktemp("mc_maze")
    train = write_mc_maze_train_nwb(root / "train.nwb", session)
    test = write_mc_maze_test_nwb(root / "test.nwb", session)
    return read_mc_maze_nwb(train), read_mc_maze_nwb(test)


# --------------------------------------------------------------------------- binning rules


def test_spike_index_rounds_to_six_decimals_then_truncates() -> None:
    times = np.array([0.0, 0.0009999, 0.0049999999, 0.0049994, 0.005, 1.2345678])
    # 4.9999999 ms rounds to 5.0 first (bin 5); 4.9994 ms stays in bin 4.
    assert spike_bin_indices(times).tolist() == [0, 0, 5, 4, 5, 1234]
    assert spike_bin_indices(np.array([10.0025]), t0=10.0).tolist() == [2]


def test_spikes_off_the_grid_are_ignored() -> None:
    counts = bin_spikes_1ms(np.array([-0.002, 0.0001, 0.0003, 0.0021, 0.0099, 0.5]), 10)
    assert counts.tolist() == [2, 0, 1, 0, 0, 0, 0, 0, 0, 1]


def test_observed_bins_follow_the_interval_rule() -> None:
    mask = observed_bins(np.array([[0.0005, 0.0035], [0.006, 0.0080000001]]), 10)
    # [0.5, 3.5] ms -> bins 1, 2; [6, 8.0000001] ms -> bins 6, 7.
    assert np.flatnonzero(mask).tolist() == [1, 2, 6, 7]
    assert observed_bins(None, 3).all()


def test_rebin_sums_five_bins_and_keeps_nan_of_the_first() -> None:
    fine = np.array([1, 0, 2, 0, 1, np.nan, 1, 1, 0, 0, 1, np.nan, 3], dtype=float)
    coarse = rebin_counts(fine, 5)
    # Bin 1 starts with NaN -> NaN; bin 2's NaN is not its first bin -> sum of the rest;
    # the 3-bin tail is summed too.
    assert coarse[0] == 4 and np.isnan(coarse[1]) and coarse[2] == 4
    assert coarse.shape == (3,)
    two_columns = rebin_counts(np.stack([fine, fine], axis=1), 5)
    assert two_columns.shape == (3, 2) and np.isnan(two_columns[1]).all()


def test_velocity_grid_nan_fill_and_interpolation() -> None:
    timestamps = np.array([0.002, 0.003, 0.0060001, 0.007])
    values = np.array([[1.0, 10.0], [2.0, 20.0], [5.0, 50.0], [6.0, 60.0]])
    grid = velocity_on_grid(timestamps, values, 10)
    assert np.isnan(grid[[0, 1, 4, 5, 8, 9]]).all() and grid[6, 0] == 5.0
    filled = fill_gaps(grid)
    assert filled[:, 0].tolist() == [1, 1, 1, 2, 3, 4, 5, 6, 6, 6]
    assert filled[4, 1] == 30.0


def test_decimation_is_a_zero_phase_fir_of_order_500() -> None:
    t = np.arange(4000) / 1000.0
    velocity = np.stack([np.sin(2 * np.pi * 1.5 * t), np.cos(2 * np.pi * 0.7 * t)], axis=1)

    out = decimate_velocity(velocity, 5)

    assert out.shape == (800, 2)
    padded = np.concatenate([velocity, np.repeat(velocity[-1:], 500, axis=0)])
    expected = scipy.signal.decimate(padded, 5, n=500, ftype="fir", zero_phase=True, axis=0)
    np.testing.assert_allclose(out, expected[:800])
    # Zero phase: row k tracks sample 5k of a slow signal (away from the zero-padded start).
    np.testing.assert_allclose(out[100:700], velocity[500:3500:5], atol=2e-3)


def test_window_starts_at_the_first_grid_point_at_or_after_the_offset() -> None:
    onsets = np.array([1.2345, 1.250, 1.2549999999, 0.3])
    assert window_start_bins(onsets, -250, 5).tolist() == [197, 200, 201, 10]
    # The velocity window is the same rule shifted by the lag.
    assert window_start_bins(onsets, -250 + 100, 5).tolist() == [217, 220, 221, 30]


def test_ldns_split_sizes_for_the_full_dataset() -> None:
    labels = ["train"] * 1721 + ["val"] * 574

    split = ldns_split(labels, seed=42)

    names, counts = np.unique(split.labels, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == {
        "train": 2008,
        "val": 71,
        "test": 216,
    }
    assert split.rows[:2008].tolist() == list(range(1721 + 287))
    # Identical to LDNS's torch random_split of the second half of NLB-val.
    rest = list(range(1721 + 287, 2295))
    val, test = torch.utils.data.random_split(
        rest, [71, 216], generator=torch.Generator().manual_seed(42)
    )
    assert split.rows[2008:2079].tolist() == [rest[i] for i in val.indices]
    assert split.rows[2079:].tolist() == [rest[i] for i in test.indices]


def test_ldns_split_keeps_file_order_within_nlb_splits() -> None:
    labels = np.array(["val", "train", "val", "none", "train", "val", "val", "val", "val"])

    split = ldns_split(labels, seed=0)

    # NLB-train (1, 4), then the first 3 of the 6 NLB-val (0, 2, 5); 3 left: 0 val, 3 test.
    assert split.rows[:5].tolist() == [1, 4, 0, 2, 5]
    assert sorted(split.rows[5:].tolist()) == [6, 7, 8]
    assert split.labels.tolist() == ["train"] * 5 + ["test"] * 3


def test_reach_angle_at_bin_50() -> None:
    velocity = np.zeros((2, 140, 2))
    velocity[0, 50] = [0.0, 1.0]
    velocity[1, 50] = [-1.0, 0.0]
    np.testing.assert_allclose(reach_angle(velocity), [math.pi / 2, math.pi])


# --------------------------------------------------------------------------- files


def test_reader_sees_the_mc_maze_layout(files, session: FakeMcMazeSession) -> None:
    train, test = files
    assert train.units.heldout.tolist() == session.heldout.tolist()
    for got, expected in zip(train.units.spike_times, session.spike_times, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(train.units.obs_intervals[0], session.obs_intervals)
    assert train.trials.split.tolist() == session.split.tolist()
    np.testing.assert_array_equal(train.trials.move_onset_time, session.move_onset_time)
    np.testing.assert_array_equal(train.behaviour.hand_vel, session.hand_vel)
    assert test.behaviour is None and not test.units.heldout.any()
    assert test.units.ids.tolist() == session.unit_ids[~session.heldout].tolist()
    assert set(test.trials.split.tolist()) == {"test"}


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*data fetch mc_maze"):
        read_mc_maze_nwb(tmp_path / "nope.nwb")
    (tmp_path / "bad.nwb").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not a readable MC_Maze NWB file"):
        read_mc_maze_nwb(tmp_path / "bad.nwb")


def test_test_file_cannot_make_tensors(files) -> None:
    with pytest.raises(DataError, match="no processing/behavior/hand_vel"):
        make_ldns_tensors(files[1])


def _reference_bins(spike_times: np.ndarray) -> Counter:
    """Spike counts per 5 ms bin of one unit, by the 1 ms index rule, one spike at a time."""
    return Counter(int(v) // 5 for v in np.round(spike_times * 1000, 6))


def test_tensors_from_the_train_file(files, session: FakeMcMazeSession) -> None:
    tensors = make_ldns_tensors(files[0], lag_ms=100, seed=42)

    # 8 NLB-train with an onset + 8 NLB-val: train 8 + 4, val 1, test 3; the gap trial dropped.
    assert tensors.split.tolist() == ["train"] * 11 + ["val"] + ["test"] * 3
    assert tensors.dropped_trials == [session.gap_trial]
    assert tensors.trial[:11].tolist() == [0, 2, 6, 8, 10, 13, 16, 1, 4, 7, 9]
    assert sorted(tensors.trial[11:].tolist()) == [11, 14, 15, 17]
    assert tensors.spikes.shape == (15, 140, 6) and tensors.spikes.dtype == np.uint8
    assert tensors.velocity.shape == (15, 140, 2) and tensors.velocity.dtype == np.float32
    # Held-in units first, then held-out, each in file order.
    assert tensors.unit_names == [
        "heldin_000",
        "heldin_002",
        "heldin_003",
        "heldin_005",
        "heldout_001",
        "heldout_004",
    ]
    assert tensors.n_heldin == 4
    order = [0, 2, 3, 5, 1, 4]
    bins = [_reference_bins(session.spike_times[unit]) for unit in order]
    for row, trial in enumerate(tensors.trial):
        onset_ns = round(float(session.move_onset_time[trial]) * 1e9)
        first = -(-(onset_ns - 250 * 10**6) // (5 * 10**6))
        for column, counts in enumerate(bins):
            expected = [counts[b] for b in range(first, first + 140)]
            assert tensors.spikes[row, :, column].tolist() == expected

    n_ms = int(round(session.obs_intervals[-1, 1] * 1000))
    grid = velocity_on_grid(session.hand_timestamps, session.hand_vel, n_ms)
    smooth = decimate_velocity(fill_gaps(grid), 5)
    starts = window_start_bins(session.move_onset_time[tensors.trial], -150, 5)
    index = starts[:, None] + np.arange(140)
    np.testing.assert_allclose(tensors.velocity, smooth[index] / 1000, rtol=1e-6)
    assert np.abs(tensors.velocity).max() < 0.2  # m/s
    np.testing.assert_allclose(
        tensors.angle, np.arctan2(tensors.velocity[:, 50, 1], tensors.velocity[:, 50, 0])
    )
    missing = np.isnan(grid[::5, 0])
    assert tensors.velocity_gap_bins == int(missing[index].sum()) > 0


def test_tensors_are_deterministic_and_seeded(files) -> None:
    first = make_ldns_tensors(files[0], seed=42)
    again = make_ldns_tensors(files[0], seed=42)
    other = make_ldns_tensors(files[0], seed=7)
    np.testing.assert_array_equal(first.spikes, again.spikes)
    assert first.trial.tolist() == again.trial.tolist()
    assert first.trial[:11].tolist() == other.trial[:11].tolist()  # train does not shuffle


# --------------------------------------------------------------------------- settings


def test_settings_defaults_and_variant_lags() -> None:
    settings = McMazeSettings()
    assert (settings.variant, settings.bin_ms, settings.window_ms) == ("full", 5, (-250, 450))
    assert settings.effective_lag_ms == 100 and settings.seed == 42 and settings.n_steps == 140
    assert McMazeSettings(variant="small").effective_lag_ms == 120
    assert McMazeSettings(variant="small", lag_ms=100).effective_lag_ms == 100
    data = mc_maze_settings_dict(settings)
    assert data["lag_ms"] is None and data["window_ms"] == (-250, 450)
    assert settings_from_dict(data) == settings
    assert settings_from_dict({**data, "window_ms": [-250, 450]}) == settings  # YAML lists
    # Defaults with only the variant changed (how the CLI applies --set) take its lag.
    assert settings_from_dict({**data, "variant": "large"}).effective_lag_ms == 120
    assert settings_hash(data) != settings_hash(mc_maze_settings_dict(McMazeSettings(lag_ms=100)))
    assert mc_maze_asset_paths("medium") == (
        "sub-Jenkins/sub-Jenkins_ses-medium_desc-train_behavior+ecephys.nwb",
        "sub-Jenkins/sub-Jenkins_ses-medium_desc-test_ecephys.nwb",
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "huge"}, "variant must be one of full, large, medium, small"),
        ({"window_ms": (-250, 452)}, "multiple of bin_ms"),
        ({"angle_bin": 140}, "angle_bin"),
    ],
)
def test_invalid_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        McMazeSettings(**kwargs)
