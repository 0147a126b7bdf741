"""synthetic-maze: the MC_Maze-like simulator and its on-disk trial layout (interfaces §C)."""

import dataclasses

import numpy as np
import pytest

from neuralcli.data import synthetic_maze_dataset
from neuralcli.data.sources.synthetic_maze import (
    SyntheticMazeSettings,
    reach_angle,
    simulate_synthetic_maze,
    synthetic_maze_rates,
    velocity_decoding_r2,
)
from neuralcli.data.store import read_settings, settings_hash
from neuralcli.data.synthetic_maze_dataset import (
    is_prepared,
    load_synthetic_maze,
    prepare_synthetic_maze,
    settings_from_dict,
    synthetic_maze_dir,
    synthetic_maze_settings_dict,
)
from neuralcli.errors import DataError

SMALL = SyntheticMazeSettings(n_trials=300, seed=1)
TINY = SyntheticMazeSettings(n_trials=30, n_neurons=12, seed=2)


@pytest.fixture(scope="module")
def small():
    return simulate_synthetic_maze(SMALL)


@pytest.fixture(scope="module")
def decoding(small):
    """(train R², held-out R²) of OLS from smoothed spikes at bin k to velocity at k + shift."""
    return {
        shift: velocity_decoding_r2(small.spikes, small.velocity, small.split, shift_bins=shift)
        for shift in (-20, 0, 20)
    }


def test_shapes_dtypes_and_mc_maze_like_ranges(small):
    n, length, neurons = 300, 140, 182
    assert small.spikes.shape == (n, length, neurons) and small.spikes.dtype == np.uint8
    assert small.velocity.shape == (n, length, 2) and small.velocity.dtype == np.float32
    assert small.angle.shape == (n,) and small.angle.dtype == np.float64
    assert small.factors.shape == (n, length, SMALL.n_factors) == (n, length, 7)
    assert small.readout.shape == (neurons, 7) and small.bias.shape == (neurons,)
    speed = np.linalg.norm(small.velocity, axis=-1)  # (n, T) m/s
    assert 0.5 < speed.max() <= 1.05  # MC_Maze: |v| up to about 1 m/s
    assert 0.05 < small.spikes.mean() < 0.2  # counts per 5 ms bin
    per_neuron = small.spikes.mean(axis=(0, 1))
    assert per_neuron.min() > 0.005 and per_neuron.max() < 0.6
    counts = {split: int((small.split == split).sum()) for split in ("train", "val", "test")}
    assert counts == {"train": 240, "val": 30, "test": 30}
    assert set(np.unique(small.condition)) <= set(range(SMALL.n_conditions))


def test_deterministic_for_a_seed_and_trials_do_not_depend_on_n_trials():
    first = simulate_synthetic_maze(TINY)
    again = simulate_synthetic_maze(TINY)
    for name in first._fields:
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    other = simulate_synthetic_maze(dataclasses.replace(TINY, seed=3))
    assert not np.array_equal(other.spikes, first.spikes)
    longer = simulate_synthetic_maze(dataclasses.replace(TINY, n_trials=45))
    for name in ("spikes", "velocity", "angle", "condition", "factors", "readout"):
        np.testing.assert_array_equal(
            getattr(longer, name)[: len(first.angle)], getattr(first, name)
        )


def test_angle_is_read_at_behaviour_bin_50(small):
    at = small.velocity[:, 50].astype(np.float64)
    np.testing.assert_array_equal(small.angle, np.arctan2(at[:, 1], at[:, 0]))
    np.testing.assert_array_equal(reach_angle(small.velocity), small.angle)
    # The hand moves at bin 50 (100 ms after onset), so the angle is well defined ...
    assert np.linalg.norm(small.velocity[:, 50], axis=-1).min() > 0.05
    # ... and near the condition's direction: jitter 5°, curvature at most 30° · s(τ) there.
    direction = 2 * np.pi * small.condition / SMALL.n_conditions
    error = np.degrees(np.abs(np.angle(np.exp(1j * (small.angle - direction)))))
    assert np.percentile(error, 95) < 20


def test_velocity_lags_the_neurons_by_100_ms(small, decoding):
    speed = np.linalg.norm(small.velocity, axis=-1)  # (n, T)
    # Behaviour bin k is the hand at t_k + 100 ms, t_k = −250 + 5k ms: onset (±20 ms) is bin 30.
    assert speed[:, :26].max() == 0.0
    assert (speed[:, 35] > 0).all()
    # Neural bin k encodes behaviour bin k: that alignment decodes best, better than the hand
    # at the spikes' own time (shift −20 bins) or another 100 ms later (+20).
    r2 = {shift: heldout for shift, (_, heldout) in decoding.items()}
    assert r2[0] > r2[-20] + 0.2 and r2[0] > r2[20] + 0.2


def test_velocity_is_linearly_decodable_from_smoothed_spikes(decoding):
    train_r2, heldout_r2 = decoding[0]
    assert heldout_r2 > 0.8
    assert train_r2 < heldout_r2 + 0.05  # a linear read-out, not overfitting


def test_rates_recompute_and_equal_the_baseline_at_rest():
    settings = dataclasses.replace(TINY, nuisance_gain=0.0)
    data = simulate_synthetic_maze(settings)
    rates = synthetic_maze_rates(data.factors, data.readout, data.bias, data.baseline)
    assert rates.shape == (30, 140, 12) and rates.dtype == np.float32
    # Before movement-related activity begins (neural bin 30), every neuron is at rest.
    np.testing.assert_allclose(rates[:, :20], np.broadcast_to(data.baseline, (30, 20, 12)), 1e-5)
    assert 0.02 <= data.baseline.min() and data.baseline.max() <= 0.2


@pytest.mark.parametrize(
    "field, value",
    [("n_trials", 0), ("angle_bin", 140), ("bin_seconds", 0.0), ("split_fractions", (0.5, 0.5))],
)
def test_settings_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SyntheticMazeSettings(**{field: value})


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    prepare_synthetic_maze(home, TINY)
    return home


def test_prepare_writes_the_trial_layout(home):
    directory = (
        home / "processed" / "synthetic-maze" / settings_hash(synthetic_maze_settings_dict(TINY))
    )
    assert directory == synthetic_maze_dir(home, TINY)
    assert sorted(p.name for p in directory.iterdir()) == ["settings.yaml", "synthetic-maze.h5"]
    settings = read_settings(directory)
    assert settings["dataset"] == "synthetic-maze" and settings["n_trials"] == 30
    assert settings_from_dict(settings) == TINY
    assert is_prepared(home, TINY)
    assert not is_prepared(home, dataclasses.replace(TINY, n_trials=31))

    session = load_synthetic_maze(home, TINY)
    expected = simulate_synthetic_maze(TINY)
    assert session.arrays["spikes"].dtype == np.uint8
    assert session.arrays["spikes"].shape == (30, 140, 12)
    assert session.arrays["velocity"].dtype == np.float32
    np.testing.assert_array_equal(session.arrays["spikes"], expected.spikes)
    np.testing.assert_array_equal(session.arrays["velocity"], expected.velocity)
    np.testing.assert_array_equal(session.segments["trial"], np.arange(30))
    np.testing.assert_array_equal(session.segments["split"], expected.split)
    np.testing.assert_array_equal(session.segments["angle"], expected.angle)
    assert session.segments["angle"].dtype == np.float64
    assert session.units["spikes"] == "count" and session.units["velocity"] == "m/s"
    assert session.attrs["bin_seconds"] == 0.005 and session.attrs["n_neurons"] == 12
    assert session.attrs["dataset"] == "synthetic-maze" and session.attrs["session"]
    assert len(session.channel_names) == 12
    rates = synthetic_maze_rates(
        session.arrays["factors"],
        session.arrays["readout"],
        session.arrays["bias"],
        session.arrays["baseline"],
    )
    np.testing.assert_array_equal(
        rates,
        synthetic_maze_rates(expected.factors, expected.readout, expected.bias, expected.baseline),
    )


def test_prepare_skips_a_readable_copy_and_redoes_a_broken_one(home, monkeypatch):
    path = synthetic_maze_dir(home, TINY) / "synthetic-maze.h5"
    calls = []
    real = synthetic_maze_dataset.simulate_synthetic_maze
    monkeypatch.setattr(
        synthetic_maze_dataset,
        "simulate_synthetic_maze",
        lambda *a, **k: calls.append(1) or real(*a, **k),
    )
    assert prepare_synthetic_maze(home, TINY) == path
    assert calls == []
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="neuralcli data fetch synthetic-maze"):
        load_synthetic_maze(home, TINY)
    prepare_synthetic_maze(home, TINY)
    assert calls == [1]
    assert is_prepared(home, TINY)


def test_load_before_prepare_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="neuralcli data fetch synthetic-maze"):
        load_synthetic_maze(tmp_path, TINY)
