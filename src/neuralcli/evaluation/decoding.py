"""Linear decoding of behaviour from per-time-step features (distillation §9).

The protocol scores a representation by how well an unregularised linear map reads velocity out
of it: one ordinary-least-squares decoder with intercept per session, fit on the train rows (one
row per 10 ms time step), scored by R² on the val and test rows pooled. The functions here are
that protocol in numpy alone; they reproduce scikit-learn's `LinearRegression` and `r2_score`
(uniform average over outputs) without needing scikit-learn at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from neuralcli.errors import DataError

# scipy.ndimage is imported in `smooth_counts`: it costs ~20 MB and ~0.5 s at import, and the
# training path imports this module (through the synthetic sources) only for `r2_score`.

TRAIN_SPLIT = "train"
HELDOUT_SPLITS = ("val", "test")  # pooled for the reported score (distillation §9 step 4)


@dataclass(frozen=True)
class OlsDecoder:
    """y = x @ weights + intercept, fit by ordinary least squares."""

    weights: np.ndarray  # (d, k) float64
    intercept: np.ndarray  # (k,) float64

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, d) features -> (n, k) float64 predictions."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.weights.shape[0]:
            raise ValueError(
                f"features must have shape (n, {self.weights.shape[0]}), got {features.shape}"
            )
        return features @ self.weights + self.intercept  # (n, k)


class DecodingResult(NamedTuple):
    train_r2: float  # R² on the rows the decoder was fit on
    heldout_r2: float  # R² on the val + test rows pooled (distillation §9 step 4)
    n_train: int  # rows (time steps) fit on
    n_heldout: int  # rows scored


def fit_ols(features: np.ndarray, targets: np.ndarray) -> OlsDecoder:
    """Least-squares decoder with intercept (sklearn `LinearRegression()` semantics).

    features: (n, d), targets: (n, k) or (n,). Both are centred and the slope is the minimum-norm
    `lstsq` solution of the centred problem, which is how scikit-learn fits an intercept; a rank-
    deficient design (constant or duplicated columns) therefore still gives a well-defined fit.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"features (n, d) and targets (n, k) must share n, got {x.shape} and {y.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError("cannot fit a decoder on zero rows")
    x_mean = x.mean(axis=0)  # (d,)
    y_mean = y.mean(axis=0)  # (k,)
    weights, *_ = np.linalg.lstsq(x - x_mean, y - y_mean, rcond=None)  # (d, k)
    return OlsDecoder(weights=weights, intercept=y_mean - x_mean @ weights)


def r2_score(targets: np.ndarray, predictions: np.ndarray) -> float:
    """Coefficient of determination averaged uniformly over output columns.

    Matches `sklearn.metrics.r2_score(..., multioutput="uniform_average")`: per column
    1 − SS_res / SS_tot; a constant column scores 1 when predicted exactly and 0 otherwise.
    targets, predictions: (n, k) or (n,).
    """
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(f"targets and predictions must share shape, got {y.shape} and {p.shape}")
    if y.shape[0] < 2:
        raise ValueError("R² needs at least two rows")
    residual = ((y - p) ** 2).sum(axis=0)  # (k,)
    total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)  # (k,)
    scores = np.where(residual == 0.0, 1.0, 0.0)  # sklearn's force_finite convention
    varying = total != 0.0
    scores[varying] = 1.0 - residual[varying] / total[varying]
    return float(scores.mean())


def decode_splits(
    features: np.ndarray, targets: np.ndarray, split_labels: np.ndarray
) -> DecodingResult:
    """Fit OLS on the "train" rows, score it there and on the "val" + "test" rows pooled.

    features: (n, d); targets: (n, k); split_labels: (n,) strings, one per row (time step).
    Rows with any other label are ignored.
    """
    labels = np.asarray(split_labels)
    features = np.asarray(features)
    targets = np.asarray(targets)
    if labels.shape != (features.shape[0],) or targets.shape[0] != features.shape[0]:
        raise ValueError(
            f"features {features.shape}, targets {targets.shape} and split_labels "
            f"{labels.shape} must have one row per time step"
        )
    train = labels == TRAIN_SPLIT
    heldout = np.isin(labels, HELDOUT_SPLITS)
    if train.sum() < 2 or heldout.sum() < 2:
        raise DataError(
            f"decoding needs train and val/test rows, got {int(train.sum())} train and "
            f"{int(heldout.sum())} held-out; use a longer session or other splits"
        )
    decoder = fit_ols(features[train], targets[train])
    return DecodingResult(
        train_r2=r2_score(targets[train], decoder.predict(features[train])),
        heldout_r2=r2_score(targets[heldout], decoder.predict(features[heldout])),
        n_train=int(train.sum()),
        n_heldout=int(heldout.sum()),
    )


def contiguous_split_labels(n_bins: int, train_fraction: float = 0.8) -> np.ndarray:
    """(n_bins,) labels: the first `train_fraction` of the bins "train", the rest "test".

    One contiguous block each, so that the slow structure of a recording cannot leak between
    fit and score through neighbouring bins.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    labels = np.full(n_bins, "test", dtype="<U5")
    labels[: int(round(train_fraction * n_bins))] = TRAIN_SPLIT
    return labels


def smooth_counts(counts: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian smoothing along time: (n, U) counts -> (n, U) float32.

    A symmetric (non-causal) kernel of standard deviation `sigma_bins` bins, truncated at 4σ,
    edges mirrored; sigma_bins = 0 returns the counts as float32.
    """
    from scipy.ndimage import gaussian_filter1d

    counts = np.asarray(counts)
    if counts.ndim != 2:
        raise ValueError(f"counts must have shape (n, U), got {counts.shape}")
    if not np.isfinite(sigma_bins) or sigma_bins < 0:
        raise ValueError(f"sigma_bins must be >= 0, got {sigma_bins}")
    values = counts.astype(np.float32)
    if sigma_bins == 0:
        return values
    return gaussian_filter1d(values, sigma=float(sigma_bins), axis=0, mode="reflect")
