"""Behaviour read out of generated rates: ridge velocity decoding and reach angles (LDNS §11.3).

The decoder is sklearn `Ridge(alpha=1e-6)` (with intercept) from per-bin rates to 2-d hand
velocity (m/s), fit on the training trials' AE rates with every (trial, bin) as one row. The
same decoder is applied to rates decoded from conditionally sampled latents:

- velocity-conditioned samples: R² (sklearn `r2_score`, uniform average over x and y) of the
  decoded velocity against the velocity the samples were conditioned on;
- angle-conditioned samples: the reach angle θ = atan2(v_y, v_x) of the decoded velocity at
  bin 50 (~100 ms after movement onset, data-sources §3.1 step 7) against the condition θ.

LDNS reports no quantitative conditional score (only trajectories); the bars here are ours:
R² ≥ 0.7 for velocity conditioning and |angle error| ≤ 30° for ≥ 80 % of angle-conditioned
samples. Angles are in radians (as atan2 and the angle condition); angle errors in degrees.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from neuralcli.errors import DataError

# sklearn is imported inside the functions that use it: importing it loads rich (its
# progress-bar callbacks), which the library keeps out of (the CLI owns the console).

RIDGE_ALPHA = 1e-6  # LDNS §11.3
ANGLE_BIN = 50  # data-sources §3.1 step 7
VELOCITY_R2_BAR = 0.7
ANGLE_TOLERANCE_DEGREES = 30.0
ANGLE_FRACTION_BAR = 0.8


@dataclass(frozen=True)
class RidgeDecoder:
    """velocity = rates @ weights + intercept, per time bin.

    weights: (N, 2) float64; intercept: (2,) float64; alpha: the ridge penalty it was fit with.
    """

    weights: np.ndarray
    intercept: np.ndarray
    alpha: float

    @property
    def n_neurons(self) -> int:
        return int(self.weights.shape[0])

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """(rows, N) rates -> (rows, 2) velocity."""
        return np.asarray(rows, dtype=np.float64) @ self.weights + self.intercept

    def to_dict(self) -> dict[str, object]:
        return {
            "weights": self.weights.tolist(),
            "intercept": self.intercept.tolist(),
            "alpha": self.alpha,
        }

    @classmethod
    def from_dict(cls, values: dict) -> RidgeDecoder:
        return cls(
            weights=np.asarray(values["weights"], dtype=np.float64),
            intercept=np.asarray(values["intercept"], dtype=np.float64),
            alpha=float(values["alpha"]),
        )


def _trials(array: np.ndarray, name: str, last: int | None = None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3 or 0 in array.shape or (last is not None and array.shape[2] != last):
        wanted = f"(trials, T, {last})" if last is not None else "(trials, T, N)"
        raise DataError(f"{name} must be a non-empty {wanted} array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name} holds NaN or infinite values; interpolate or drop those trials")
    return array


def _same_trials(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise DataError(
            f"{a_name} {a.shape} and {b_name} {b.shape} must cover the same (trials, T)"
        )


def fit_velocity_decoder(
    rates: np.ndarray, velocity: np.ndarray, *, alpha: float = RIDGE_ALPHA
) -> RidgeDecoder:
    """Ridge from rates to velocity, rows = trials × bins (LDNS §11.3).

    rates: (n, T, N) AE rates of the training trials; velocity: (n, T, 2) in m/s.
    """
    rates = _trials(rates, "rates")
    velocity = _trials(velocity, "velocity", last=2)
    _same_trials(rates, velocity, "rates", "velocity")
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=alpha)
    model.fit(
        rates.reshape(-1, rates.shape[2]).astype(np.float64),
        velocity.reshape(-1, 2).astype(np.float64),
    )
    return RidgeDecoder(
        weights=np.asarray(model.coef_, dtype=np.float64).T.copy(),  # sklearn: (2, N)
        intercept=np.asarray(model.intercept_, dtype=np.float64).copy(),
        alpha=float(alpha),
    )


def decode_velocity(decoder: RidgeDecoder, rates: np.ndarray) -> np.ndarray:
    """(n, T, N) rates -> (n, T, 2) decoded velocity (float64)."""
    rates = _trials(rates, "rates", last=decoder.n_neurons)
    n_trials, n_bins, n_neurons = rates.shape
    return decoder.predict(rates.reshape(-1, n_neurons)).reshape(n_trials, n_bins, 2)


def velocity_r2(predicted: np.ndarray, condition: np.ndarray) -> float:
    """sklearn r2_score(condition, predicted), uniform average over x and y, rows = trials × bins.

    predicted, condition: (n, T, 2).
    """
    predicted = _trials(predicted, "predicted velocity", last=2)
    condition = _trials(condition, "condition velocity", last=2)
    if predicted.shape != condition.shape:
        raise DataError(
            f"predicted {predicted.shape} and condition {condition.shape} velocities must match"
        )
    from sklearn.metrics import r2_score

    return float(
        r2_score(condition.reshape(-1, 2), predicted.reshape(-1, 2), multioutput="uniform_average")
    )


def reach_angle(velocity: np.ndarray, bin: int = ANGLE_BIN, *, half_window: int = 0) -> np.ndarray:
    """Reach angle θ = atan2(v_y, v_x) at time bin `bin` (data-sources §3.1 step 7).

    half_window > 0 averages the velocity over bins bin − half_window .. bin + half_window
    first (0, the default, is the LDNS definition). velocity: (n, T, 2) -> (n,) radians.
    """
    velocity = _trials(velocity, "velocity", last=2)
    if half_window < 0 or not 0 <= bin - half_window <= bin + half_window < velocity.shape[1]:
        raise DataError(
            f"bin {bin} ± {half_window} is outside the {velocity.shape[1]} time bins; pass a "
            "bin inside the trial"
        )
    v = velocity[:, bin - half_window : bin + half_window + 1].mean(axis=1)  # (n, 2)
    return np.arctan2(v[:, 1], v[:, 0])


def angle_errors(predicted: np.ndarray, condition: np.ndarray) -> np.ndarray:
    """Signed difference predicted − condition in degrees, wrapped to [−180, 180).

    predicted, condition: (n,) radians -> (n,) degrees.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    condition = np.asarray(condition, dtype=np.float64)
    if predicted.shape != condition.shape:
        raise DataError(
            f"predicted {predicted.shape} and condition {condition.shape} angles must match"
        )
    difference = np.degrees(predicted - condition)
    return (difference + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class BehaviorReport:
    """Behaviour scores of conditioned samples; None where that kind was not evaluated.

    decoder_r2: the decoder on held-out real trials (LDNS: 0.882 on test, §13.2).
    velocity_r2: velocity-conditioned samples' decoded velocity vs their condition.
    angle_within_fraction: share of angle-conditioned samples with |error| ≤ tolerance;
    angle_median_abs_error: median |error| in degrees. *_ok: the bars of the module docstring.
    """

    decoder_r2: float | None
    velocity_r2: float | None
    n_velocity_samples: int
    angle_within_fraction: float | None
    angle_median_abs_error: float | None
    n_angle_samples: int
    angle_bin: int
    tolerance_degrees: float
    velocity_ok: bool | None
    angle_ok: bool | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def behavior_report(
    decoder: RidgeDecoder,
    *,
    velocity_rates: np.ndarray | None = None,
    velocity_condition: np.ndarray | None = None,
    angle_rates: np.ndarray | None = None,
    angle_condition: np.ndarray | None = None,
    heldout_rates: np.ndarray | None = None,
    heldout_velocity: np.ndarray | None = None,
    angle_bin: int = ANGLE_BIN,
    tolerance_degrees: float = ANGLE_TOLERANCE_DEGREES,
) -> BehaviorReport:
    """Score conditioned samples with `decoder`; each pair of arguments is optional.

    velocity_rates: (n, T, N) rates of velocity-conditioned samples, velocity_condition:
    (n, T, 2) their condition in m/s. angle_rates: (m, T, N) rates of angle-conditioned
    samples, angle_condition: (m,) their θ in radians. heldout_rates, heldout_velocity:
    AE rates and velocity of real held-out trials, to report the decoder's own R².
    """
    pairs = {
        "velocity": (velocity_rates, velocity_condition),
        "angle": (angle_rates, angle_condition),
        "heldout": (heldout_rates, heldout_velocity),
    }
    for name, (rates, target) in pairs.items():
        if (rates is None) != (target is None):
            raise DataError(f"pass both the {name} rates and their condition, or neither")

    decoder_r2 = None
    if heldout_rates is not None:
        decoder_r2 = velocity_r2(decode_velocity(decoder, heldout_rates), heldout_velocity)

    score = None
    n_velocity = 0
    if velocity_rates is not None:
        score = velocity_r2(decode_velocity(decoder, velocity_rates), velocity_condition)
        n_velocity = int(np.asarray(velocity_rates).shape[0])

    within = median = None
    n_angle = 0
    if angle_rates is not None:
        decoded = decode_velocity(decoder, angle_rates)
        condition = np.asarray(angle_condition, dtype=np.float64).reshape(-1)
        if condition.size != decoded.shape[0]:
            raise DataError(
                f"{decoded.shape[0]} angle-conditioned samples but {condition.size} angles; "
                "pass one angle per sample"
            )
        errors = np.abs(angle_errors(reach_angle(decoded, angle_bin), condition))
        within = float(np.mean(errors <= tolerance_degrees))
        median = float(np.median(errors))
        n_angle = int(decoded.shape[0])

    return BehaviorReport(
        decoder_r2=decoder_r2,
        velocity_r2=score,
        n_velocity_samples=n_velocity,
        angle_within_fraction=within,
        angle_median_abs_error=median,
        n_angle_samples=n_angle,
        angle_bin=angle_bin,
        tolerance_degrees=float(tolerance_degrees),
        velocity_ok=None if score is None else score >= VELOCITY_R2_BAR,
        angle_ok=None if within is None else within >= ANGLE_FRACTION_BAR,
    )
