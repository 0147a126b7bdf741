"""Spike statistics and metrics of LDNS §11.1-§11.3 on hand-computed and small random cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gaussian_kde

from neuralcli.errors import ConfigError, DataError
from neuralcli.evaluation import spike_stats
from neuralcli.evaluation.baselines import independent_poisson
from neuralcli.evaluation.spike_stats import (
    METRIC_NAMES,
    bootstrap_compare,
    compare_spikes,
    correlation_matrix,
    correlation_rmse,
    isi_statistics,
    mean_rates,
    nan_pearson,
    nan_rmse,
    noise_floor,
    population_count_density,
    population_count_kl,
    population_counts,
    spike_statistics,
    spike_times_from_counts,
    trial_statistics,
)


def _correlated_spikes(rng: np.random.Generator, shape=(200, 32, 16)) -> np.ndarray:
    """Poisson counts driven by one shared latent: strongly correlated neurons."""
    trials, bins, neurons = shape
    latent = rng.standard_normal((trials, bins, 1))
    log_rate = -1.5 + 0.8 * latent * rng.uniform(0.5, 1.0, size=(1, 1, neurons))
    return rng.poisson(np.exp(log_rate)).astype(np.int64)


def _naive_isi(spikes: np.ndarray, bin_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Loop reference: spike times train by train, ISIs pooled per neuron."""
    n_trials, _, n_neurons = spikes.shape
    means, stds = np.full(n_neurons, np.nan), np.full(n_neurons, np.nan)
    for neuron in range(n_neurons):
        isis = [
            np.diff(spike_times_from_counts(spikes[trial, :, neuron], bin_seconds))
            for trial in range(n_trials)
        ]
        pooled = np.concatenate(isis)
        if pooled.size:
            means[neuron], stds[neuron] = pooled.mean(), pooled.std()
    return means, stds


# --------------------------------------------------------------------------- spike times / ISI


def test_spike_times_use_even_interior_points():
    times = spike_times_from_counts(np.array([0, 2, 0, 1]), 1.0)
    np.testing.assert_allclose(times, [1 + 1 / 3, 1 + 2 / 3, 3.5])
    np.testing.assert_allclose(
        spike_times_from_counts(np.array([3]), 0.005), [0.00125, 0.0025, 0.00375]
    )
    assert spike_times_from_counts(np.zeros(5, dtype=int), 1.0).size == 0


def test_isi_statistics_of_a_known_train():
    spikes = np.zeros((2, 4, 2), dtype=np.int64)
    spikes[0, :, 0] = [0, 2, 0, 1]  # ISIs 1/3 and 3.5 - 5/3 = 11/6 (in bins)
    spikes[1, :, 0] = [1, 0, 0, 0]  # a single spike: no ISI
    mean, std = isi_statistics(spikes, 0.5)
    np.testing.assert_allclose(mean[0], 0.5 * 13 / 12)
    np.testing.assert_allclose(std[0], 0.5 * 0.75)  # population std of {1/3, 11/6}
    assert np.isnan(mean[1]) and np.isnan(std[1])  # silent neuron


def test_isi_statistics_match_loop_reference_across_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    spikes = rng.poisson(rng.uniform(0.05, 1.5, size=(1, 1, 6)), size=(9, 20, 6))
    spikes[:, :, 2] = 0
    spikes[:, :, 4] = 0
    spikes[3, 7, 4] = 1  # one spike in the whole neuron: NaN
    monkeypatch.setattr(spike_stats, "_CHUNK_ELEMENTS", 2 * 20 * 6)  # several trial chunks
    mean, std = isi_statistics(spikes, 0.005)
    ref_mean, ref_std = _naive_isi(spikes, 0.005)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(std, ref_std, rtol=1e-9, atol=1e-12)
    assert np.isnan(mean[[2, 4]]).all()


@pytest.mark.parametrize(
    "bad", [np.full((2, 3, 2), 0.5), np.full((2, 3, 2), -1.0), np.full((2, 3, 2), np.nan)]
)
def test_non_count_values_are_rejected(bad):
    with pytest.raises(DataError, match="non-negative integer counts"):
        isi_statistics(bad, 1.0)


def test_shape_and_bin_width_are_checked():
    with pytest.raises(DataError, match="trials, T, N"):
        compare_spikes(np.zeros((4, 5)), np.zeros((4, 5)))
    with pytest.raises(DataError, match="neurons"):
        compare_spikes(np.ones((4, 5, 3), dtype=int), np.ones((4, 5, 2), dtype=int))
    with pytest.raises(ConfigError, match="bin_seconds"):
        mean_rates(np.ones((2, 2, 2)), 0.0)


def test_mean_rates_per_bin_and_per_second():
    spikes = np.zeros((2, 4, 2), dtype=np.int64)
    spikes[:, :, 0] = 1
    spikes[0, 0, 1] = 2
    np.testing.assert_allclose(mean_rates(spikes, 1.0), [1.0, 0.25])
    np.testing.assert_allclose(mean_rates(spikes, 0.005), [200.0, 50.0])


# --------------------------------------------------------------------------- population count


def test_population_counts_sum_over_neurons():
    spikes = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    np.testing.assert_array_equal(population_counts(spikes), spikes.sum(axis=2).ravel())
    assert population_counts(spikes).shape == (6,)


def test_population_count_density_equals_scipy_kde():
    counts = np.random.default_rng(1).poisson(4.0, size=500)
    density = population_count_density(counts, 15)
    reference = gaussian_kde(counts)(np.arange(16))
    np.testing.assert_allclose(density, reference / reference.sum(), rtol=1e-10)
    assert density.sum() == pytest.approx(1.0)


def test_constant_population_count_is_a_point_mass():
    np.testing.assert_array_equal(population_count_density(np.full(10, 2), 4), [0, 0, 1, 0, 0])


def test_population_count_kl_by_hand():
    rng = np.random.default_rng(2)
    data = rng.poisson(0.3, size=(50, 10, 8))
    assert population_count_kl(data, data) == pytest.approx(0.0, abs=1e-15)
    model = rng.poisson(0.6, size=(50, 10, 8))
    m = int(max(population_counts(model).max(), population_counts(data).max()))
    p = population_count_density(population_counts(model), m)
    q = population_count_density(population_counts(data), m)
    expected = float(np.sum(p * np.log(p / q)))
    assert population_count_kl(model, data) == pytest.approx(expected, rel=1e-12)
    assert expected > 0.05
    # max_count sets the grid (Table 1 uses the maximum over all methods).
    p = population_count_density(population_counts(model), m + 5)
    q = population_count_density(population_counts(data), m + 5)
    assert population_count_kl(model, data, max_count=m + 5) == pytest.approx(
        float(np.sum(p * np.log(p / q))), rel=1e-12
    )


# --------------------------------------------------------------------------- correlations


def test_correlation_matrix_of_perfectly_correlated_neurons():
    rng = np.random.default_rng(3)
    base = rng.poisson(1.0, size=(20, 15))
    spikes = np.stack([base, 2 * base, 10 - base, np.zeros_like(base)], axis=-1)
    matrix = correlation_matrix(spikes)
    np.testing.assert_allclose(matrix[1, 0], 1.0)
    np.testing.assert_allclose(matrix[2, 0], -1.0)
    np.testing.assert_allclose(matrix[2, 1], -1.0)
    assert np.isnan(matrix[3, :3]).all()  # silent neuron: NaN in its strict-lower row
    assert np.all(np.triu(np.nan_to_num(matrix, nan=1.0)) == 0.0)  # diagonal and upper zeroed


def test_correlation_matrix_matches_numpy_corrcoef():
    spikes = _correlated_spikes(np.random.default_rng(4), (30, 20, 6))
    reference = np.corrcoef(spikes.reshape(-1, 6).T)
    np.testing.assert_allclose(correlation_matrix(spikes), np.tril(reference, k=-1), atol=1e-12)
    # Float counts, and counts too large for the exact float32 path, give the same matrix.
    np.testing.assert_allclose(
        correlation_matrix(spikes.astype(np.float32)), np.tril(reference, k=-1), atol=1e-12
    )
    big = spikes * 5000
    np.testing.assert_allclose(correlation_matrix(big), np.tril(reference, k=-1), atol=1e-12)
    fractional = spikes + 0.25 * np.random.default_rng(5).random(spikes.shape)
    expected = np.tril(np.corrcoef(fractional.reshape(-1, 6).T), k=-1)
    np.testing.assert_allclose(correlation_matrix(fractional), expected, atol=1e-10)


def test_correlation_rmse_is_diluted_by_the_zeroed_entries():
    rng = np.random.default_rng(6)
    model = _correlated_spikes(rng, (40, 20, 5))
    data = rng.poisson(0.3, size=(40, 20, 5))
    diff = correlation_matrix(model) - correlation_matrix(data)
    lower = diff[np.tril_indices(5, k=-1)]  # 10 real entries out of 25
    expected = np.sqrt(np.sum(lower**2) / 25)
    assert correlation_rmse(model, data) == pytest.approx(expected, rel=1e-12)
    assert correlation_rmse(model, data) == pytest.approx(
        np.sqrt(np.mean(lower**2)) * np.sqrt(10 / 25), rel=1e-12
    )


def test_nan_rmse_and_nan_pearson_ignore_nans():
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([1.0, 4.0, 3.0, np.nan])
    assert nan_rmse(a, b) == pytest.approx(np.sqrt(2.0))
    assert nan_pearson([1.0, 2.0, 3.0, np.nan], [2.0, 4.0, 6.0, 0.0]) == pytest.approx(1.0)
    assert nan_pearson([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]) == pytest.approx(-1.0)
    assert np.isnan(nan_pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(nan_rmse([np.nan], [1.0]))


# --------------------------------------------------------------------------- comparisons


def test_compare_identical_arrays_is_perfect():
    spikes = _correlated_spikes(np.random.default_rng(7))
    result = compare_spikes(spikes, spikes, bin_seconds=0.005)
    assert result.kl_population_count == pytest.approx(0.0, abs=1e-15)
    for name in ("rmse_correlation", "rmse_mean_isi", "rmse_std_isi", "mean_rate_error"):
        assert getattr(result, name) == pytest.approx(0.0, abs=1e-12)
    for name in ("pearson_mean_isi", "pearson_std_isi", "pearson_correlation"):
        assert getattr(result, name) == pytest.approx(1.0)
    assert result.pearson_population_count == pytest.approx(1.0)
    as_dict = result.to_dict()
    assert set(as_dict) == set(METRIC_NAMES) | {"n_model", "n_data"}
    assert as_dict["n_model"] == as_dict["n_data"] == 200


def test_pooled_resample_equals_statistics_of_the_resampled_array():
    rng = np.random.default_rng(8)
    spikes = _correlated_spikes(rng, (25, 12, 5))
    trials = rng.integers(0, 25, size=25)  # with repeats, as in the bootstrap
    pooled = trial_statistics(spikes, bin_seconds=0.005).pooled(trials)
    direct = spike_statistics(spikes[trials], bin_seconds=0.005)
    np.testing.assert_array_equal(pooled.population_counts, direct.population_counts)
    for name in ("correlation", "mean_isi", "std_isi", "mean_rate"):
        np.testing.assert_allclose(getattr(pooled, name), getattr(direct, name), atol=1e-12)
    assert pooled.n_trials == 25


def test_noise_floor_is_below_a_clearly_different_model():
    rng = np.random.default_rng(9)
    data = _correlated_spikes(rng)
    floor = noise_floor(data, bin_seconds=1.0, seed=42)
    independent = compare_spikes(independent_poisson(data, n_trials=200, seed=1), data)
    too_fast = compare_spikes(2 * data, data)
    assert floor.n_model == floor.n_data == 100
    assert floor.rmse_correlation < 0.5 * independent.rmse_correlation
    assert floor.kl_population_count < 0.1 * too_fast.kl_population_count
    assert floor.rmse_mean_isi < too_fast.rmse_mean_isi
    assert floor.mean_rate_error < too_fast.mean_rate_error
    assert floor.pearson_correlation > 0.9 > independent.pearson_correlation
    assert noise_floor(data, seed=42) == floor  # seeded
    with pytest.raises(DataError, match="at least 2"):
        noise_floor(data[:1])


def test_bootstrap_protocol():
    rng = np.random.default_rng(10)
    data = _correlated_spikes(rng, (60, 16, 8))
    model = independent_poisson(data, n_trials=60, seed=3)
    result = bootstrap_compare(model, data, n_bootstrap=3, seed=42, bin_seconds=0.005)
    assert len(result.model_runs) == len(result.floor_runs) == 3
    assert set(result.model_mean) == set(METRIC_NAMES) == set(result.floor_std)
    values = [run.rmse_correlation for run in result.model_runs]
    assert result.model_mean["rmse_correlation"] == pytest.approx(np.mean(values))
    assert result.model_std["rmse_correlation"] == pytest.approx(np.std(values))
    assert result.floor_mean["rmse_correlation"] < result.model_mean["rmse_correlation"]
    assert all(run.n_model == 60 and run.n_data == 60 for run in result.model_runs)
    assert all(run.n_model == 30 and run.n_data == 30 for run in result.floor_runs)

    # Rebuild the first resamples by the documented protocol.
    generator = np.random.default_rng(42)
    sets = [generator.integers(0, 60, size=60) for _ in range(3)]
    half, complement = np.split(generator.permutation(60), 2)
    data_stats = trial_statistics(data, bin_seconds=0.005)
    reference = data_stats.pooled()
    expected_model = spike_stats.compare_statistics(
        spike_statistics(model[sets[0]], bin_seconds=0.005),
        reference,
        max_count=int(max(model.sum(-1).max(), data.sum(-1).max())),
    )
    assert result.model_runs[0].rmse_mean_isi == pytest.approx(expected_model.rmse_mean_isi)
    assert result.model_runs[0].kl_population_count == pytest.approx(
        expected_model.kl_population_count
    )
    # The floor's ISI metrics use the full reference (§11.2 quirk); the rest use the other half.
    floor_half = spike_statistics(data[sets[0][complement]], bin_seconds=0.005)
    other_half = spike_statistics(data[half], bin_seconds=0.005)
    floor = result.floor_runs[0]
    assert floor.rmse_mean_isi == pytest.approx(nan_rmse(floor_half.mean_isi, reference.mean_isi))
    assert floor.rmse_std_isi == pytest.approx(nan_rmse(floor_half.std_isi, reference.std_isi))
    assert floor.rmse_correlation == pytest.approx(
        nan_rmse(floor_half.correlation, other_half.correlation)
    )

    # Precomputed statistics give the same numbers; a bin-width mismatch is refused.
    again = bootstrap_compare(
        trial_statistics(model, bin_seconds=0.005), data_stats, n_bootstrap=3, bin_seconds=0.005
    )
    assert again.to_dict() == result.to_dict()
    with pytest.raises(DataError, match="bin_seconds"):
        bootstrap_compare(model, data_stats, bin_seconds=1.0)
    with pytest.raises(ConfigError, match="n_bootstrap"):
        bootstrap_compare(model, data, n_bootstrap=0, bin_seconds=0.005)


def test_precomputed_statistics_give_the_same_comparison():
    rng = np.random.default_rng(11)
    data = _correlated_spikes(rng, (30, 16, 6))
    model = rng.poisson(0.3, size=(20, 16, 6))
    data_stats = trial_statistics(data, bin_seconds=0.005)
    direct = compare_spikes(model, data, bin_seconds=0.005)
    assert compare_spikes(model, data_stats, bin_seconds=0.005) == direct
    assert noise_floor(data_stats, bin_seconds=0.005) == noise_floor(data, bin_seconds=0.005)
    assert (direct.n_model, direct.n_data) == (20, 30)
