"""Velocity decoding and reach angles of conditioned samples (LDNS §11.3)."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcli.errors import DataError
from neuralcli.evaluation.behavior import (
    RidgeDecoder,
    angle_errors,
    behavior_report,
    decode_velocity,
    fit_velocity_decoder,
    reach_angle,
    velocity_r2,
)

N_BINS = 60


def _reaches(angles: np.ndarray) -> np.ndarray:
    """(n,) radians -> (n, T, 2) bell-shaped reaches peaking at bin 50."""
    profile = np.exp(-0.5 * ((np.arange(N_BINS) - 50) / 8.0) ** 2)  # (T,)
    direction = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (n, 2)
    return 0.8 * profile[None, :, None] * direction[:, None, :]


def _linear_rates(velocity: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rates that are an exact affine function of velocity: (n, T, 2) -> (n, T, 12)."""
    mixing = np.random.default_rng(seed).standard_normal((2, 12))
    return velocity @ mixing + 3.0, mixing


def test_perfectly_linear_rates_decode_with_r2_one() -> None:
    rng = np.random.default_rng(1)
    velocity = _reaches(rng.uniform(-np.pi, np.pi, 40))
    rates, _ = _linear_rates(velocity)
    decoder = fit_velocity_decoder(rates, velocity)
    assert decoder.weights.shape == (12, 2) and decoder.intercept.shape == (2,)
    decoded = decode_velocity(decoder, rates)
    assert decoded.shape == velocity.shape
    assert velocity_r2(decoded, velocity) == pytest.approx(1.0, abs=1e-6)
    # Held-out trials of the same linear map decode just as well; noise lowers R².
    test_velocity = _reaches(rng.uniform(-np.pi, np.pi, 10))
    test_rates, _ = _linear_rates(test_velocity)
    assert velocity_r2(decode_velocity(decoder, test_rates), test_velocity) > 0.999
    noisy = decode_velocity(decoder, test_rates + rng.normal(0.0, 2.0, test_rates.shape))
    assert velocity_r2(noisy, test_velocity) < 0.9
    assert RidgeDecoder.from_dict(decoder.to_dict()).predict(rates[0]) == pytest.approx(
        decoder.predict(rates[0])
    )


def test_reach_angle_reads_bin_50() -> None:
    angles = np.array([0.0, np.pi / 2, -3.0, 3.1])
    assert reach_angle(_reaches(angles)) == pytest.approx(angles)
    velocity = _reaches(angles)
    velocity[:, 10] = [1.0, 0.0]  # other bins do not matter
    assert reach_angle(velocity, 50) == pytest.approx(angles)
    assert reach_angle(velocity, 10) == pytest.approx(np.zeros(4))
    with pytest.raises(DataError, match="outside"):
        reach_angle(velocity, N_BINS)


def test_angle_errors_wrap_around() -> None:
    predicted = np.radians([179.0, -179.0, 10.0, 350.0, 90.0])
    condition = np.radians([-179.0, 179.0, -10.0, 10.0, -90.0])
    errors = angle_errors(predicted, condition)
    assert errors == pytest.approx([-2.0, 2.0, 20.0, -20.0, -180.0])
    assert np.all((errors >= -180.0) & (errors < 180.0))


def test_report_fraction_within_30_degrees() -> None:
    rng = np.random.default_rng(2)
    train_velocity = _reaches(rng.uniform(-np.pi, np.pi, 50))
    train_rates, mixing = _linear_rates(train_velocity)
    decoder = fit_velocity_decoder(train_rates, train_velocity)

    condition = np.radians(np.linspace(-170.0, 170.0, 10))
    offsets = np.radians([5, -10, 25, -29, 2, 0, 40, -60, 15, 179])  # 7 of 10 within 30°
    samples = _reaches(condition + offsets) @ mixing + 3.0  # the samples "reach" off-target
    report = behavior_report(
        decoder,
        velocity_rates=train_rates,
        velocity_condition=train_velocity,
        angle_rates=samples,
        angle_condition=condition,
        heldout_rates=train_rates[:5],
        heldout_velocity=train_velocity[:5],
    )
    assert report.angle_within_fraction == pytest.approx(0.7)
    assert report.angle_ok is False  # bar: 80 %
    assert report.n_angle_samples == 10 and report.n_velocity_samples == 50
    assert report.velocity_r2 == pytest.approx(1.0, abs=1e-6) and report.velocity_ok is True
    assert report.decoder_r2 == pytest.approx(1.0, abs=1e-6)
    assert report.angle_median_abs_error == pytest.approx(20.0, abs=1e-6)
    assert report.to_dict()["tolerance_degrees"] == 30.0

    only_angles = behavior_report(decoder, angle_rates=samples[:6], angle_condition=condition[:6])
    assert only_angles.velocity_r2 is None and only_angles.velocity_ok is None
    assert only_angles.angle_within_fraction == 1.0 and only_angles.angle_ok  # first 6 within


def test_inputs_are_checked() -> None:
    velocity = _reaches(np.zeros(4))
    rates, _ = _linear_rates(velocity)
    decoder = fit_velocity_decoder(rates, velocity)
    with pytest.raises(DataError, match="same"):
        fit_velocity_decoder(rates[:3], velocity)
    with pytest.raises(DataError, match=r"\(trials, T, 12\)"):
        decode_velocity(decoder, rates[:, :, :5])
    with pytest.raises(DataError, match="both"):
        behavior_report(decoder, angle_rates=rates)
    with pytest.raises(DataError, match="one angle per sample"):
        behavior_report(decoder, angle_rates=rates, angle_condition=np.zeros(3))
