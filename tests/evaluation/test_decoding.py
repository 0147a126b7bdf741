"""The §9 decoding protocol: OLS and R² agree with scikit-learn; splits pool val and test."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score as sklearn_r2_score

from neuralcli.errors import DataError
from neuralcli.evaluation.decoding import (
    OlsDecoder,
    contiguous_split_labels,
    decode_splits,
    fit_ols,
    r2_score,
    smooth_counts,
)


def _problem(seed: int = 0, n: int = 400, d: int = 7, k: int = 2):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0, size=d) + 3.0
    weights = rng.standard_normal((d, k))
    targets = features @ weights + 0.5 + rng.standard_normal((n, k))
    return features, targets


def test_fit_ols_matches_sklearn_linear_regression():
    features, targets = _problem()
    decoder = fit_ols(features, targets)
    reference = LinearRegression().fit(features, targets)
    np.testing.assert_allclose(decoder.weights, reference.coef_.T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(decoder.intercept, reference.intercept_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(
        decoder.predict(features), reference.predict(features), rtol=0, atol=1e-8
    )


def test_fit_ols_is_well_defined_for_rank_deficient_features():
    features, targets = _problem(seed=1)
    # A constant and a duplicated column: sklearn returns the minimum-norm solution, so do we.
    features = np.concatenate([features, np.ones((len(features), 1)), features[:, :1]], axis=1)
    decoder = fit_ols(features, targets)
    reference = LinearRegression().fit(features, targets)
    np.testing.assert_allclose(decoder.predict(features), reference.predict(features), atol=1e-8)
    assert np.all(np.isfinite(decoder.weights))


def test_fit_ols_accepts_one_dimensional_targets():
    features, targets = _problem(k=1)
    decoder = fit_ols(features, targets[:, 0])
    assert decoder.weights.shape == (features.shape[1], 1)
    assert decoder.predict(features).shape == (len(features), 1)


def test_r2_score_matches_sklearn_uniform_average():
    features, targets = _problem(seed=2, k=3)
    predictions = fit_ols(features[:300], targets[:300]).predict(features[300:])
    assert r2_score(targets[300:], predictions) == pytest.approx(
        sklearn_r2_score(targets[300:], predictions), abs=1e-8
    )
    noisy = targets + np.random.default_rng(3).standard_normal(targets.shape) * 5.0
    assert r2_score(targets, noisy) == pytest.approx(sklearn_r2_score(targets, noisy), abs=1e-8)


def test_r2_score_constant_target_follows_sklearn():
    targets = np.stack([np.ones(5), np.arange(5.0)], axis=1)
    exact = targets.copy()
    off = targets + np.array([0.5, 0.0])
    assert r2_score(targets, exact) == pytest.approx(sklearn_r2_score(targets, exact))
    assert r2_score(targets, off) == pytest.approx(sklearn_r2_score(targets, off))


def test_r2_score_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="share shape"):
        r2_score(np.zeros((4, 2)), np.zeros((4, 1)))


def test_decode_splits_fits_on_train_and_pools_val_and_test():
    features, targets = _problem(seed=4, n=100)
    labels = np.array(["train"] * 60 + ["val"] * 15 + ["test"] * 15 + ["other"] * 10)
    result = decode_splits(features, targets, labels)
    decoder = LinearRegression().fit(features[:60], targets[:60])
    assert result.n_train == 60 and result.n_heldout == 30
    assert result.train_r2 == pytest.approx(decoder.score(features[:60], targets[:60]), abs=1e-8)
    assert result.heldout_r2 == pytest.approx(
        decoder.score(features[60:90], targets[60:90]), abs=1e-8
    )


def test_decode_splits_needs_train_and_heldout_rows():
    features, targets = _problem(n=10)
    with pytest.raises(DataError, match="train and val/test rows"):
        decode_splits(features, targets, np.array(["train"] * 10))
    with pytest.raises(ValueError, match="one row per time step"):
        decode_splits(features, targets, np.array(["train"] * 9))


def test_contiguous_split_labels_are_two_blocks():
    labels = contiguous_split_labels(10, 0.8)
    assert labels.tolist() == ["train"] * 8 + ["test"] * 2


def test_smooth_counts_keeps_mass_and_shape():
    counts = np.zeros((101, 3), dtype=np.uint8)
    counts[50, :] = [1, 2, 4]
    smoothed = smooth_counts(counts, 3.0)
    assert smoothed.dtype == np.float32 and smoothed.shape == counts.shape
    np.testing.assert_allclose(smoothed.sum(axis=0), [1, 2, 4], rtol=1e-5)
    assert smoothed[50, 2] == smoothed[:, 2].max() and smoothed[40, 2] > 0
    np.testing.assert_array_equal(smooth_counts(counts, 0.0), counts.astype(np.float32))


def test_ols_decoder_checks_feature_width():
    decoder = OlsDecoder(weights=np.zeros((3, 2)), intercept=np.zeros(2))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        decoder.predict(np.zeros((4, 2)))
