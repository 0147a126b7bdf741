"""Independent-Poisson baseline: right mean rates, no correlations."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcli.errors import ConfigError, DataError
from neuralcli.evaluation.baselines import independent_poisson
from neuralcli.evaluation.spike_stats import correlation_matrix, mean_rates


def _correlated_spikes() -> np.ndarray:
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((200, 32, 1))
    return rng.poisson(np.exp(-1.0 + 0.8 * latent + rng.uniform(-1, 0, size=(1, 1, 16))))


def test_independent_poisson_matches_rates_without_correlations():
    data = _correlated_spikes()
    samples = independent_poisson(data, n_trials=300, seed=1)
    assert samples.shape == (300, 32, 16)
    assert samples.dtype == np.int32
    np.testing.assert_allclose(mean_rates(samples, 1.0), mean_rates(data, 1.0), rtol=0.08)
    lower = np.tril_indices(16, k=-1)
    assert np.nanmin(correlation_matrix(data)[lower]) > 0.1  # the data are correlated
    # 9600 rows: null correlations have std ~0.01.
    assert np.abs(correlation_matrix(samples)[lower]).max() < 0.06


def test_independent_poisson_is_seeded_and_checks_inputs():
    data = _correlated_spikes()[:20]
    np.testing.assert_array_equal(
        independent_poisson(data, n_trials=5, seed=3), independent_poisson(data, n_trials=5, seed=3)
    )
    assert not np.array_equal(
        independent_poisson(data, n_trials=5, seed=3), independent_poisson(data, n_trials=5, seed=4)
    )
    with pytest.raises(DataError, match="trials, T, N"):
        independent_poisson(data[0], n_trials=5, seed=0)
    with pytest.raises(ConfigError, match="n_trials"):
        independent_poisson(data, n_trials=0, seed=0)
