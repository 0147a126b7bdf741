"""The Lorenz simulator follows the LDNS recipe (data-sources §5) on tiny sizes."""

import numpy as np
import pytest
import torch

from neuralcli.data.sources.lorenz import (
    BASE_INITIAL_CONDITION,
    LorenzSettings,
    draw_initial_conditions,
    integrate_trajectories,
    lorenz_bias,
    lorenz_rates,
    simulate_lorenz,
    split_labels,
    split_sizes,
)

SMALL = LorenzSettings(n_trials=20, length=64, n_neurons=16)


@pytest.fixture(scope="module")
def data():
    return simulate_lorenz(SMALL, workers=1)


def test_shapes_and_dtypes(data):
    assert data.spikes.shape == (20, 64, 16) and data.spikes.dtype == np.uint8
    assert data.rates.shape == (20, 64, 16) and data.rates.dtype == np.float32
    assert data.latents.shape == (20, 64, 3) and data.latents.dtype == np.float32
    assert data.split.shape == (20,)
    assert set(data.split.tolist()) <= {"train", "val", "test"}
    assert data.readout.shape == (16, 3)


def test_latents_are_z_scored_per_trajectory_and_dimension(data):
    np.testing.assert_allclose(data.latents.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.latents.std(axis=1), 1.0, atol=1e-5)


def test_readout_rows_unit_norm_and_sorted_by_first_column(data):
    np.testing.assert_allclose(np.linalg.norm(data.readout, axis=1), 1.0, atol=1e-6)
    assert np.all(np.diff(data.readout[:, 0]) >= 0)


def test_readout_and_poisson_follow_the_seeded_global_stream_of_the_recipe(data):
    # The recipe draws C and then the counts from torch's global RNG right after seeding.
    with torch.random.fork_rng():
        torch.manual_seed(SMALL.seed)
        readout = torch.randn(SMALL.n_neurons, 3)
        readout = readout / readout.norm(dim=1, keepdim=True)
        readout = readout[readout[:, 0].argsort()]
        counts = torch.poisson(torch.from_numpy(data.rates))
    np.testing.assert_array_equal(data.readout, readout.numpy())
    np.testing.assert_array_equal(data.spikes, counts.numpy().astype(np.uint8))


def test_initial_conditions_are_one_seeded_numpy_draw():
    expected = np.asarray(BASE_INITIAL_CONDITION) + 2.0 * np.random.RandomState(42).randn(20, 3)
    np.testing.assert_array_equal(draw_initial_conditions(SMALL), expected)


def test_bias_and_rates(data):
    assert data.bias == pytest.approx(np.log(0.3), abs=1e-6)
    assert lorenz_bias(0.3, 4096) == pytest.approx(data.bias, abs=1e-6)
    rates = lorenz_rates(data.latents, data.readout, data.bias, SMALL.softplus_beta)
    np.testing.assert_array_equal(rates.numpy(), data.rates)


def test_mean_rate_in_a_sane_range(data):
    # The full recipe gives about 0.14 spikes per bin (data-sources §5 step 6).
    assert 0.05 < data.spikes.mean() < 0.35
    assert abs(data.spikes.mean() - data.rates.mean()) < 0.02


def test_deterministic_for_a_seed_and_different_across_seeds(data):
    again = simulate_lorenz(SMALL, workers=1)
    for name in ("spikes", "rates", "latents", "split", "readout"):
        np.testing.assert_array_equal(getattr(again, name), getattr(data, name))
    other = simulate_lorenz(LorenzSettings(n_trials=20, length=64, n_neurons=16, seed=1), workers=1)
    assert not np.array_equal(other.latents, data.latents)


def test_process_pool_gives_the_same_trajectories(data):
    initial_conditions = draw_initial_conditions(SMALL)[:6]
    seen = []
    pooled = integrate_trajectories(
        initial_conditions, SMALL, workers=2, on_progress=lambda d, t: seen.append((d, t))
    )
    np.testing.assert_array_equal(pooled, data.latents[:6])
    assert seen[-1] == (6, 6) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_progress_reports_every_trajectory():
    seen = []
    simulate_lorenz(
        LorenzSettings(n_trials=3, length=8, n_neurons=2, burn_in=4),
        workers=1,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (3, 3)


def test_split_sizes_of_the_reference_set_without_simulating():
    assert split_sizes(5000, (0.7, 0.1, 0.2)) == (3500, 500, 1000)
    labels = split_labels(5000, (0.7, 0.1, 0.2), seed=42)
    counts = {name: int((labels == name).sum()) for name in ("train", "val", "test")}
    assert counts == {"train": 3500, "val": 500, "test": 1000}


def test_split_labels_match_torch_random_split():
    subsets = torch.utils.data.random_split(
        range(50), [35, 5, 10], generator=torch.Generator().manual_seed(42)
    )
    labels = split_labels(50, (0.7, 0.1, 0.2), seed=42)
    for name, subset in zip(("train", "val", "test"), subsets, strict=True):
        assert sorted(subset.indices) == np.flatnonzero(labels == name).tolist()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_trials", 0),
        ("length", 1),
        ("n_neurons", 2.5),
        ("mean_rate", 0.0),
        ("softplus_beta", -1.0),
        ("ic_scale", -0.1),
        ("split_fractions", (0.5, 0.5, 0.5)),
        ("split_fractions", (1.0, 0.0)),
        ("seed", -1),
        ("sigma", float("nan")),
    ],
)
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        LorenzSettings(**{field: value})


def test_settings_normalise_yaml_values():
    settings = LorenzSettings(split_fractions=[0.7, 0.1, 0.2], mean_rate=1)
    assert settings.split_fractions == (0.7, 0.1, 0.2)
    assert isinstance(settings.mean_rate, float)
    assert settings.to_dict()["split_fractions"] == [0.7, 0.1, 0.2]
