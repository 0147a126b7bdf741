"""Streamed broadband -> LFP extraction (data-sources §6.1) and the Flint recipe (§6.2)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from neuralcli.data.preprocess.filters import (
    butter_highpass_sos,
    butter_lowpass_sos,
    decimation_fir,
    notch_harmonics_sos,
    resample_fir,
)
from neuralcli.data.preprocess.kinematics import zscore
from neuralcli.data.preprocess.lfp import (
    LfpSettings,
    extract_broadband_lfp,
    flint_lfp,
    interpolate_to_grid,
)
from neuralcli.errors import ConfigError, DataError

FS = 24414.0625  # MakinRT broadband (data-sources §1.2)
FAST_FS = FS / 16  # a slow test "broadband": with decimation 4, fs_mid = 381 Hz
FAST = LfpSettings(decimation=4)
SMALL_BUDGET = 8 * 2**20
HUGE_BUDGET = 64 * 2**30


class ArraySource:
    """In-memory BroadbandSource over a (k, n) float64 array; counts reads, can fail."""

    def __init__(self, x: np.ndarray, fs: float, *, start_time: float = 12.5, fail_at: int = -1):
        self.x = x
        self.n_samples, self.n_channels = x.shape
        self.sampling_rate = fs
        self.start_time = start_time
        self.end_time = start_time + (self.n_samples - 1) / fs
        self.reads = 0
        self.fail_at = fail_at

    def read(self, start: int, stop: int) -> np.ndarray:
        self.reads += 1
        if self.reads == self.fail_at:
            raise OSError("disk went away")
        return self.x[start:stop].copy()


def _broadband(seconds: float, fs: float, n_channels: int, *, seed: int) -> np.ndarray:
    """Volts-scale offsets + slow drift + 10 Hz + 60 Hz line + spiky noise, (k, n)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    drift = np.cumsum(rng.standard_normal((n, n_channels)), axis=0) * 2e-7
    gains = rng.uniform(0.5, 1.5, n_channels)
    lfp = 1e-4 * np.sin(2 * np.pi * 10.0 * t)[:, None] * gains
    line = 5e-5 * np.sin(2 * np.pi * 60.0 * t + 0.3)[:, None]
    noise = 2e-5 * rng.standard_normal((n, n_channels))
    return lfp + line + drift + noise + rng.uniform(-1e-3, 1e-3, n_channels)


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _whole_array_reference(x: np.ndarray, fs: float, settings: LfpSettings) -> np.ndarray:
    """The recipe in lfp.py's docstring as plain scipy calls on whole arrays, (n_out, n)."""
    fs_mid = fs / settings.decimation
    y = signal.sosfiltfilt(butter_lowpass_sos(fs_mid / 2, fs), x, axis=0)
    fir = decimation_fir(settings.decimation, fs, passband_hz=settings.decimation_passband_hz)
    mid = signal.resample_poly(y, 1, settings.decimation, axis=0, window=fir, padtype="antireflect")
    mid = mid - mid.mean(axis=0)
    cascade = np.concatenate(
        [
            notch_harmonics_sos(settings.notch_hz, fs_mid, q=settings.notch_q),
            butter_highpass_sos(settings.highpass_hz, fs_mid),
            butter_lowpass_sos(settings.lowpass_hz, fs_mid),
        ]
    )
    filtered = signal.sosfiltfilt(cascade, mid, axis=0)
    ratio = Fraction(settings.output_rate_hz / fs_mid).limit_denominator(1000)
    out = signal.resample_poly(
        filtered,
        ratio.numerator,
        ratio.denominator,
        axis=0,
        window=resample_fir(ratio.numerator, ratio.denominator),
        padtype="antireflect",
    )
    return out - out.mean(axis=1, keepdims=True)


def test_streamed_equals_one_block_and_whole_array_recipe(tmp_path: Path):
    x = _broadband(400.0, FAST_FS, 3, seed=0)
    calls: list[tuple[int, int]] = []
    source = ArraySource(x, FAST_FS)
    one_block = extract_broadband_lfp(
        source, settings=FAST, max_memory_bytes=HUGE_BUDGET, workdir=tmp_path
    )
    small = ArraySource(x, FAST_FS)
    streamed = extract_broadband_lfp(
        small,
        settings=FAST,
        max_memory_bytes=SMALL_BUDGET,
        workdir=tmp_path,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    assert small.reads > 10 and source.reads < small.reads  # pass 1 caps blocks for the cache
    assert streamed.lfp.dtype == np.float32 and streamed.lfp.shape == one_block.lfp.shape
    assert _relative_error(streamed.lfp, one_block.lfp) < 1e-6
    assert _relative_error(one_block.lfp, _whole_array_reference(x, FAST_FS, FAST)) < 1e-6
    np.testing.assert_array_equal(streamed.times, one_block.times)
    dones = [done for done, _ in calls]
    assert dones == sorted(dones) and calls[-1][0] == calls[-1][1]
    assert len(calls) > 10 + 3  # many pass-1 blocks and several pass-2 blocks
    assert list(tmp_path.iterdir()) == []  # the temporary fs_mid file is gone


def test_streamed_equals_one_block_at_the_real_rate(tmp_path: Path):
    settings = LfpSettings()  # decimation 32: fs_mid = 763 Hz
    x = _broadband(90.0, FS, 2, seed=1)
    small = ArraySource(x, FS)
    streamed = extract_broadband_lfp(
        small, settings=settings, max_memory_bytes=10 * 2**20, workdir=tmp_path
    )
    one_block = extract_broadband_lfp(
        ArraySource(x, FS), settings=settings, max_memory_bytes=HUGE_BUDGET, workdir=tmp_path
    )
    assert small.reads > 10
    assert _relative_error(streamed.lfp, one_block.lfp) < 1e-6
    assert abs(streamed.sampling_rate - 100.0) < 2e-3  # up / down with down <= 1000
    assert list(tmp_path.iterdir()) == []


def test_line_noise_removed_and_10_hz_kept(tmp_path: Path):
    settings = dataclasses.replace(FAST, common_average=False)
    fs, seconds = FAST_FS, 120.0
    t = np.arange(int(seconds * fs)) / fs
    tone = 1e-4 * np.sin(2 * np.pi * 10.0 * t)
    line = 3e-4 * np.sin(2 * np.pi * 60.0 * t + 1.0)
    x = np.stack([tone + line + 2e-3, line - 1e-3], axis=1)  # (k, 2) with DC offsets
    stream = extract_broadband_lfp(
        ArraySource(x, fs), settings=settings, max_memory_bytes=SMALL_BUDGET, workdir=tmp_path
    )
    keep = slice(2000, -2000)  # away from the session's ends
    times, lfp = stream.times[keep] - stream.times[0], stream.lfp[keep].astype(np.float64)
    basis = np.stack([np.sin(2 * np.pi * 10.0 * times), np.cos(2 * np.pi * 10.0 * times)], 1)
    coef, *_ = np.linalg.lstsq(basis, lfp[:, 0], rcond=None)
    assert abs(np.hypot(*coef) / 1e-4 - 1.0) < 0.03  # 10 Hz amplitude within 3 %
    residual = lfp[:, 0] - basis @ coef
    assert np.sqrt(np.mean(residual**2)) < 0.01 * 1e-4  # 60 Hz (and its alias at 40 Hz) gone
    assert np.max(np.abs(lfp[:, 1])) < 0.01 * 3e-4


def test_times_rate_and_common_average(tmp_path: Path):
    x = _broadband(60.0, FAST_FS, 4, seed=2)
    source = ArraySource(x, FAST_FS)
    stream = extract_broadband_lfp(source, settings=FAST, workdir=tmp_path)
    assert stream.times[0] == source.start_time
    np.testing.assert_allclose(np.diff(stream.times), 1 / stream.sampling_rate, rtol=1e-9)
    assert abs(stream.sampling_rate - 100.0) < 1e-3
    assert len(stream.times) == len(stream.lfp)
    assert np.max(np.abs(stream.lfp.mean(axis=1))) < 1e-6 * np.max(np.abs(stream.lfp))
    original = extract_broadband_lfp(
        ArraySource(x, FAST_FS),
        settings=dataclasses.replace(FAST, linspace_times=True),
        workdir=tmp_path,
    )
    assert original.times[0] == source.start_time and original.times[-1] == source.end_time
    np.testing.assert_array_equal(original.lfp, stream.lfp)


def test_temporary_file_removed_when_the_source_fails(tmp_path: Path):
    x = _broadband(200.0, FAST_FS, 2, seed=3)
    source = ArraySource(x, FAST_FS, fail_at=4)
    with pytest.raises(OSError, match="disk went away"):
        extract_broadband_lfp(
            source, settings=FAST, max_memory_bytes=SMALL_BUDGET, workdir=tmp_path
        )
    assert source.reads == 4
    assert list(tmp_path.iterdir()) == []


def test_budget_and_settings_errors(tmp_path: Path):
    source = ArraySource(_broadband(10.0, FAST_FS, 2, seed=4), FAST_FS)
    with pytest.raises(ConfigError, match="max_memory_bytes"):
        extract_broadband_lfp(source, settings=FAST, max_memory_bytes=2**20, workdir=tmp_path)
    with pytest.raises(ConfigError, match="highpass_hz"):
        LfpSettings(highpass_hz=60.0)
    with pytest.raises(ConfigError, match="decimation"):
        extract_broadband_lfp(source, settings=LfpSettings(decimation=8), workdir=tmp_path)
    with pytest.raises(DataError, match="too short"):
        extract_broadband_lfp(
            ArraySource(np.zeros((100, 2)), FAST_FS), settings=FAST, workdir=tmp_path
        )
    assert LfpSettings().to_dict()["decimation"] == 32
    assert LfpSettings(**LfpSettings().to_dict()) == LfpSettings()


def test_interpolate_to_grid_extrapolates_linearly():
    times = np.array([0.0, 0.5, 1.5, 2.0])
    values = np.stack([3.0 * times - 1.0, -2.0 * times], axis=1)  # (4, 2) linear
    grid = np.array([-0.5, 0.0, 0.25, 1.0, 2.0, 2.75])
    out = interpolate_to_grid(times, values, grid)
    assert out.dtype == np.float32 and out.shape == (6, 2)
    np.testing.assert_allclose(out, np.stack([3.0 * grid - 1.0, -2.0 * grid], 1), atol=1e-6)


def test_zscore_constant_column():
    values = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [6.0, 5.0]])
    out = zscore(values)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 0].std(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1], 0.0)


def _flint_input(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 2000.0
    common = 50.0 * np.sin(2 * np.pi * 3.0 * t)  # removed by CAR
    own = np.sin(2 * np.pi * 8.0 * t)[:, None] * np.array([1.0, -1.0, 0.0])
    x = own + common[:, None] + 0.01 * rng.standard_normal((n, 3))
    return x.astype(np.float32), t


def test_flint_exact_ratio_is_polyphase_recipe():
    x, _ = _flint_input(40_000, seed=5)
    settings = LfpSettings()
    out = flint_lfp(x, n_out=2_000, settings=settings)  # 2 kHz -> 100 Hz exactly
    assert out.shape == (2_000, 3) and out.dtype == np.float32
    ref = x.astype(np.float64) - x.astype(np.float64).mean(axis=1, keepdims=True)
    ref = signal.sosfiltfilt(butter_lowpass_sos(50.0, 2000.0), ref, axis=0)
    fir = resample_fir(1, 20)
    ref = signal.resample_poly(ref, 1, 20, axis=0, window=fir, padtype="antireflect")
    assert _relative_error(out, ref) < 1e-6


def test_flint_any_grid_length_keeps_the_signal_on_its_positions():
    n, n_out = 40_000, 1_998  # int((tend - t0) / 0.01) rarely divides the 2 kHz length
    x, _ = _flint_input(n, seed=6)
    out = flint_lfp(x, n_out=n_out, settings=LfpSettings())
    positions = np.arange(n_out) * (n / n_out) / 2000.0  # seconds, like the FFT resample's
    expected = np.sin(2 * np.pi * 8.0 * positions)[:, None] * np.array([1.0, -1.0, 0.0])
    gain = 1 / (1 + (8.0 / 50.0) ** 4)  # order-2 Butterworth, applied twice
    interior = slice(50, -50)
    assert np.max(np.abs(out[interior] - gain * expected[interior])) < 0.01
    assert np.max(np.abs(out)) < 1.05  # the 50x common 3 Hz signal is gone (CAR)
