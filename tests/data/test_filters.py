"""Blocked zero-phase filtering and polyphase resampling equal the whole-array scipy calls."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

from neuralcli.data.preprocess.filters import (
    butter_highpass_sos,
    butter_lowpass_sos,
    decimation_fir,
    notch_harmonics_sos,
    resample_at_positions,
    resample_fir,
    resample_poly_blocks,
    resample_window,
    sosfiltfilt_time_major,
    zero_phase_blocks,
    zero_phase_margin,
)

FS = 24414.0625  # MakinRT broadband rate (data-sources §1.2)
FS_MID = FS / 32


def _relative_error(blocked: np.ndarray, whole: np.ndarray) -> float:
    return float(np.max(np.abs(blocked - whole)) / np.max(np.abs(whole)))


def _assemble(blocks, shape) -> np.ndarray:
    out = np.full(shape, np.nan)
    starts = []
    for block in blocks:
        out[..., block.start : block.stop] = block.values
        starts.append(block.start)
    assert not np.isnan(out).any()
    return out, starts


def _test_signal(n_channels: int, n: int, fs: float, seed: int) -> np.ndarray:
    """Random walk (strong slow drift) + offsets + a few sines, (C, n)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    drift = np.cumsum(rng.standard_normal((n_channels, n)), axis=1) * 0.05
    tones = np.sin(2 * np.pi * 7.3 * t) + 0.3 * np.sin(2 * np.pi * min(60.0, fs / 5) * t)
    return drift + tones + rng.standard_normal((n_channels, 1)) * 3.0


def test_blocked_highpass_at_fs_mid_matches_sosfiltfilt():
    sos = butter_highpass_sos(0.05, FS_MID)
    margin = zero_phase_margin(sos)
    assert 30 * FS_MID < margin < 200 * FS_MID  # tens of seconds of overlap
    x = _test_signal(2, 400_000, FS_MID, seed=0)  # ~524 s, 20 blocks
    whole = signal.sosfiltfilt(sos, x, axis=-1)
    blocked, starts = _assemble(
        zero_phase_blocks(sos, lambda a, b: x[:, a:b], x.shape[1], block=20_000), x.shape
    )
    assert len(starts) == 20
    assert _relative_error(blocked, whole) < 1e-6


def test_blocked_lowpass_at_broadband_rate_matches_sosfiltfilt():
    sos = butter_lowpass_sos(FS_MID / 2, FS)
    x = _test_signal(3, 200_000, FS, seed=1)
    whole = signal.sosfiltfilt(sos, x, axis=-1)
    blocked, starts = _assemble(
        zero_phase_blocks(sos, lambda a, b: x[:, a:b], x.shape[1], block=7_000), x.shape
    )
    assert len(starts) > 25
    assert _relative_error(blocked, whole) < 1e-6
    # the true ends are exact, not merely close: same padding as the whole-array call
    np.testing.assert_allclose(blocked[:, :50], whole[:, :50], rtol=0, atol=1e-12)
    np.testing.assert_allclose(blocked[:, -50:], whole[:, -50:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 4, 5])
def test_sosfiltfilt_time_major_is_sosfiltfilt(channels):
    sos = butter_lowpass_sos(FS_MID / 2, FS)
    x = _test_signal(channels, 3_000, FS, seed=5).T  # (T, n)
    out = sosfiltfilt_time_major(sos, x)
    assert out.shape == (channels, 3_000) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, signal.sosfiltfilt(sos, x, axis=0).T)


def test_blocked_notch_cascade_matches_sosfiltfilt():
    cascade = np.concatenate(
        [
            notch_harmonics_sos(60.0, FS_MID, q=30.0),
            butter_highpass_sos(0.05, FS_MID),
            butter_lowpass_sos(50.0, FS_MID),
        ]
    )
    x = _test_signal(1, 300_000, FS_MID, seed=2)
    whole = signal.sosfiltfilt(cascade, x, axis=-1)
    blocked, _ = _assemble(
        zero_phase_blocks(cascade, lambda a, b: x[:, a:b], x.shape[1], block=33_333), x.shape
    )
    assert _relative_error(blocked, whole) < 1e-6


def test_notch_harmonics_below_nyquist_null_each_line():
    sos = notch_harmonics_sos(60.0, FS_MID, q=30.0)
    assert sos.shape == (6, 6)  # 60 ... 360 Hz below 381 Hz (data-sources §6.1 step 5)
    freqs = np.arange(60.0, 361.0, 60.0)
    _, response = signal.sosfreqz(sos, worN=freqs, fs=FS_MID)
    assert np.all(np.abs(response) < 1e-6)
    _, passband = signal.sosfreqz(sos, worN=[10.0, 90.0], fs=FS_MID)
    assert np.all(np.abs(passband) > 0.98)
    assert notch_harmonics_sos(0.0, FS_MID).shape == (0, 6)


@pytest.mark.parametrize(
    ("up", "down", "block"),
    [
        (1, 32, 300),  # the broadband decimation
        (
            Fraction(100 / FS_MID).limit_denominator(1000).numerator,
            Fraction(100 / FS_MID).limit_denominator(1000).denominator,
            777,
        ),  # fs_mid -> ~100 Hz
    ],
)
def test_blocked_resample_matches_resample_poly(up, down, block):
    fir = resample_fir(up, down) if down != 32 else decimation_fir(32, FS, passband_hz=100.0)
    x = _test_signal(2, 120_001, FS_MID, seed=3)
    whole = signal.resample_poly(x, up, down, axis=-1, window=fir, padtype="antireflect")
    assert np.array_equal(whole, resample_window(x, up=up, down=down, fir=fir))
    blocked, starts = _assemble(
        resample_poly_blocks(
            lambda a, b: x[:, a:b], x.shape[1], up=up, down=down, fir=fir, block=block
        ),
        whole.shape,
    )
    assert len(starts) > 5
    assert _relative_error(blocked, whole) < 1e-6


def test_decimation_fir_stopband_and_length():
    fir = decimation_fir(32, FS, passband_hz=100.0, attenuation_db=80.0)
    assert len(fir) % 2 == 1 and len(fir) < len(resample_fir(1, 32))
    freqs = np.linspace(FS / 32 - 100.0, FS / 2, 2000)  # everything that folds onto 0-100 Hz
    _, response = signal.freqz(fir, worN=freqs, fs=FS)
    assert 20 * np.log10(np.max(np.abs(response))) < -75
    _, passband = signal.freqz(fir, worN=np.linspace(0, 100, 50), fs=FS)
    assert np.max(np.abs(np.abs(passband) - 1)) < 1e-3


def test_resample_at_positions_matches_polyphase_and_sines():
    x = _test_signal(2, 8_000, 2000.0, seed=4)
    fir = resample_fir(1, 20)
    poly = signal.resample_poly(x, 1, 20, axis=-1, window=fir, padtype="antireflect")
    direct = resample_at_positions(x, np.arange(poly.shape[-1]) * 20.0)
    assert _relative_error(direct, poly) < 1e-9

    # a non-reducible ratio: values of a band-limited sine at fractional positions
    n, n_out = 40_000, 1_999
    t = np.arange(n) / 2000.0
    tone = np.sin(2 * np.pi * 7.0 * t + 0.4)[None]  # (1, n)
    positions = np.arange(n_out) * (n / n_out)
    values = resample_at_positions(tone, positions)[0]
    expected = np.sin(2 * np.pi * 7.0 * positions / 2000.0 + 0.4)
    assert np.max(np.abs(values - expected)) < 2e-3
