"""LFP from MakinRT broadband (data-sources §6.1) and from Flint's 2 kHz LFP (§6.2).

MakinRT: `extract_broadband_lfp` streams a session of several GB in two passes with bounded
memory. What it computes is defined by the whole-array recipe below; the streamed code equals it
to ~1e-9 of the signal's size whatever the block sizes (see `filters`):

    x    (k, n) volts at fs                      fs = 1 / (ts[1] - ts[0])
    mid  = resample_poly(sosfiltfilt(aa, x), 1, D, decimation FIR, padtype="antireflect")
                                                 §6.1 steps 2-3, fs_mid = fs / D
    mid -= per-channel mean of mid               step 4
    y    = sosfiltfilt([notches; highpass; lowpass], mid)   steps 5-7, one SOS cascade
    out  = resample_poly(y, up, down, resample FIR, padtype="antireflect")   step 9
    out -= across-channel mean of out            step 8 (CAR)

Where it differs from the original pipeline, on purpose (data-sources §10):

- quirk 1: chunked reads; pass 1 writes the fs_mid signal to a temporary .npy in `workdir`,
  pass 2 reads it back in overlapping windows. Only the ~100 Hz output stays in memory.
- quirk 2: the original FFT-resampled independent 10**6-sample chunks (edge artefacts every
  ~41 s). Here decimation by D is polyphase with a Kaiser FIR (80 dB stopband; the band below
  `decimation_passband_hz` is alias-free, the rest of the fs_mid band is removed by steps 7 and 9
  anyway) on overlapping blocks, after the same order-2 Butterworth anti-alias filter.
- quirk 3: every IIR filter is in second-order sections (sosfiltfilt); same cutoffs and orders.
  Notches, high-pass and low-pass run as one cascade: inside the signal this equals running them
  one after the other; only the edge padding at the session's two ends differs (once, not three
  times).
- quirk 4: the final resample is polyphase, not a periodic FFT. fs_mid is not a multiple of
  100 Hz, so up / down = Fraction(100 / fs_mid).limit_denominator(1000): the output rate is
  fs_mid * up / down (e.g. 100.0011 Hz for fs = 24414.0625 Hz), stated in LfpStream.sampling_rate.
- quirk 5: the original stamps each resampled series with linspace(t0, tend, n), ignoring the
  true spacing. Here times are where the samples really are, t_j = ts[0] + j * down * D /
  (up * fs); `linspace_times=True` reproduces the original. Either way step 10 interpolates onto
  the kinematics grid, and the two differ by at most one output interval at the session's end.
- step 8 (CAR) runs after step 9: both are linear and identical for every channel, so the order
  does not change the result beyond rounding, and pass 2 can filter a few channels at a time.
- n_out = ceil(n_mid * up / down) (resample_poly's count) instead of int(len * 100 / fs_mid):
  at most one sample more.

Flint: `flint_lfp` has the whole array in memory (the .mat is loaded whole) and follows §6.2:
CAR, low-pass, resample to the grid's length; no notch, no high-pass.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from neuralcli.data.preprocess.filters import (
    butter_highpass_sos,
    butter_lowpass_sos,
    decimation_fir,
    notch_harmonics_sos,
    resample_at_positions,
    resample_fir,
    resample_input_window,
    resample_reach,
    resample_window,
    sosfiltfilt_time_major,
    zero_phase_margin,
)
from neuralcli.errors import ConfigError, DataError

# scipy.signal is imported inside the functions that use it: it costs ~70 MB and ~1.5 s at import,
# and training commands load this module (through the dataset settings) without filtering.

# Pass 1 works on blocks of about this many float64 samples (all channels): ~16 MB, so the
# block and its filtered copies mostly stay in the L3 cache; 4x larger blocks ran 1.6x slower.
_PASS1_BLOCK_ELEMENTS = 1 << 21
# Live float64 copies of a block while it is filtered: the read, its transpose, sosfiltfilt's
# padded input, forward and backward outputs, and slack.
_PASS1_COPIES = 6
# The same per channel group in pass 2 (the raw window itself is counted separately).
_PASS2_COPIES = 6
# Pass 2 filters channel groups of at most this many float64 samples (window x channels).
_PASS2_GROUP_ELEMENTS = 1 << 22
# Shortest signal (after decimation) that the filters' edge padding can handle.
_MIN_SAMPLES = 64
# Rows interpolated at a time onto the kinematics grid (float64 temporaries of ~25 MB at 96 ch).
_INTERPOLATION_BLOCK_ROWS = 1 << 15
# Flint: channels are filtered in groups of about this many samples.
_FLINT_GROUP_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class LfpSettings:
    """Every setting that changes the LFP numbers (all of it enters the cache key, §10 q. 12).

    Defaults are data-sources §6.1. Block sizes are not here: they change nothing but speed.
    """

    decimation: int = 32  # fs_mid = fs / decimation (§6.1 step 2)
    anti_alias: bool = True  # order-2 Butterworth at fs_mid / 2 before decimating
    notch_hz: float = 60.0  # line frequency; notched with every harmonic below Nyquist; 0: off
    notch_q: float = 30.0
    highpass_hz: float = 0.05  # 0: off
    lowpass_hz: float = 50.0
    filter_order: int = 2  # Butterworth order of the anti-alias, high- and low-pass filters
    common_average: bool = True  # subtract the across-channel mean (CAR)
    output_rate_hz: float = 100.0
    # Decimation FIR: [0, passband] alias-free with this stopband attenuation.
    decimation_passband_hz: float = 100.0
    decimation_attenuation_db: float = 80.0
    # fs_mid -> output: up / down = Fraction(output / fs_mid).limit_denominator(this).
    resample_max_denominator: int = 1000
    # Resampling FIR: half-width in units of max(up, down) and Kaiser beta (scipy's defaults).
    resample_half_width: int = 10
    resample_kaiser_beta: float = 5.0
    linspace_times: bool = False  # True: the original's linspace(t0, tend, n) (§10 quirk 5)

    def __post_init__(self) -> None:
        if self.decimation < 1:
            raise ConfigError(f"lfp.decimation must be >= 1, got {self.decimation}")
        if self.filter_order < 1:
            raise ConfigError(f"lfp.filter_order must be >= 1, got {self.filter_order}")
        if self.lowpass_hz <= 0 or self.output_rate_hz <= 0:
            raise ConfigError("lfp.lowpass_hz and lfp.output_rate_hz must be > 0")
        if not 0 <= self.highpass_hz < self.lowpass_hz:
            raise ConfigError(
                f"lfp.highpass_hz ({self.highpass_hz}) must lie in [0, lowpass_hz "
                f"({self.lowpass_hz})); use 0 to turn the high-pass off"
            )
        if self.notch_hz < 0 or self.notch_q <= 0:
            raise ConfigError("lfp.notch_hz must be >= 0 (0: off) and lfp.notch_q > 0")
        if self.resample_max_denominator < 1 or self.resample_half_width < 1:
            raise ConfigError("lfp.resample_max_denominator and resample_half_width must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class BroadbandSource(Protocol):
    """A raw multichannel recording read in slices (the NWB 1.x reader implements this)."""

    n_samples: int  # k
    n_channels: int  # n
    sampling_rate: float  # Hz, 1 / (ts[1] - ts[0])
    start_time: float  # ts[0], seconds
    end_time: float  # ts[-1], seconds

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) as (stop - start, n) float64 volts."""
        ...


class LfpStream(NamedTuple):
    """LFP at ~output_rate_hz: sample j of `lfp` was taken at `times[j]`."""

    times: np.ndarray  # (n_out,) float64 seconds
    lfp: np.ndarray  # (n_out, n_channels) float32 volts
    sampling_rate: float  # Hz, the rate actually produced (fs_mid * up / down)


class _Plan(NamedTuple):
    fs_mid: float
    anti_alias: np.ndarray | None  # SOS at fs, or None
    decimation_fir: np.ndarray | None  # None when decimation == 1
    pass1_margin: int  # input samples each side
    pass1_block: int  # fs_mid samples per block
    n_mid: int
    cascade: np.ndarray  # (sections, 6) SOS at fs_mid: notches, high-pass, low-pass
    cascade_margin: int
    up: int
    down: int
    resample_fir: np.ndarray
    resample_reach: int
    pass2_block: int  # output samples per block (multiple of up)
    pass2_group: int  # channels filtered at once
    n_out: int


def _plan(source: BroadbandSource, settings: LfpSettings, max_memory_bytes: int) -> _Plan:
    fs = float(source.sampling_rate)
    n, channels, decim = int(source.n_samples), int(source.n_channels), settings.decimation
    if not (fs > 0 and n >= 2 and channels >= 1):
        raise DataError(
            f"broadband source has fs={fs} Hz, {n} samples, {channels} channels; it needs "
            "a positive rate, at least 2 samples and 1 channel — check the file's timestamps"
        )
    fs_mid = fs / decim
    order = settings.filter_order
    if n < _MIN_SAMPLES * decim:
        raise DataError(
            f"broadband session of {n} samples is too short for decimation {decim}: it needs "
            f"at least {_MIN_SAMPLES * decim}; check that the file is complete"
        )
    if settings.lowpass_hz >= fs_mid / 2 or settings.output_rate_hz > fs_mid:
        raise ConfigError(
            f"lfp.lowpass_hz ({settings.lowpass_hz}) must be below fs_mid / 2 and "
            f"lfp.output_rate_hz ({settings.output_rate_hz}) at most fs_mid = {fs_mid:.4g} Hz "
            f"(= {fs:.6g} / decimation {decim}); lower lfp.decimation"
        )

    if decim > 1:
        if not 0 < settings.decimation_passband_hz < fs_mid / 2:
            raise ConfigError(
                f"lfp.decimation_passband_hz ({settings.decimation_passband_hz}) must lie in "
                f"(0, fs_mid / 2 = {fs_mid / 2:.4g}) Hz"
            )
        anti_alias = (
            butter_lowpass_sos(fs_mid / 2, fs, order=order) if settings.anti_alias else None
        )
        dec_fir = decimation_fir(
            decim,
            fs,
            passband_hz=settings.decimation_passband_hz,
            attenuation_db=settings.decimation_attenuation_db,
        )
        margin1 = resample_reach(dec_fir, 1) + (
            0 if anti_alias is None else zero_phase_margin(anti_alias)
        )
    else:
        anti_alias, dec_fir, margin1 = None, None, 0
    n_mid = -(-n // decim)

    parts = [notch_harmonics_sos(settings.notch_hz, fs_mid, q=settings.notch_q)]
    if settings.highpass_hz > 0:
        parts.append(butter_highpass_sos(settings.highpass_hz, fs_mid, order=order))
    parts.append(butter_lowpass_sos(settings.lowpass_hz, fs_mid, order=order))
    cascade = np.concatenate(parts, axis=0)  # (sections, 6)
    cascade_margin = zero_phase_margin(cascade)

    ratio = Fraction(settings.output_rate_hz / fs_mid).limit_denominator(
        settings.resample_max_denominator
    )
    up, down = ratio.numerator, ratio.denominator
    res_fir = resample_fir(
        up,
        down,
        half_width=settings.resample_half_width,
        kaiser_beta=settings.resample_kaiser_beta,
    )
    reach = resample_reach(res_fir, up)
    n_out = -(-n_mid * up // down)

    # Pass 1: window = block + 2 margins + alignment, all channels, _PASS1_COPIES live copies.
    bytes1 = 8 * _PASS1_COPIES * channels
    fixed1 = 2 * margin1 + 2 * decim
    window1 = min(max(_PASS1_BLOCK_ELEMENTS // channels, 8 * fixed1), max_memory_bytes // bytes1)
    block1 = (window1 - fixed1) // decim  # fs_mid samples
    # Pass 2: the raw window (all channels) plus _PASS2_COPIES copies of one channel group.
    fixed2 = 2 * (cascade_margin + reach) + 3 * down
    bytes2 = 8 * (channels + _PASS2_COPIES)  # per window sample, group of one channel
    # Pass 2 is ~5% of the work even when half of each window is overlap, so windows stay small.
    window2 = min(2 * fixed2, max_memory_bytes // bytes2)
    block2 = (window2 - fixed2) // down * up  # output samples, a multiple of up
    if block1 < 1 or block2 < 1:
        need = max(bytes1 * (fixed1 + decim), bytes2 * (fixed2 + down))
        raise ConfigError(
            f"max_memory_bytes={max_memory_bytes} is too small for {channels} channels: the "
            f"filters' overlap alone needs {need} bytes ({need / 2**20:.0f} MiB); raise it"
        )
    window2 = fixed2 + block2 // up * down
    group = (max_memory_bytes // (8 * window2) - channels) // _PASS2_COPIES
    group = int(np.clip(min(group, _PASS2_GROUP_ELEMENTS // window2), 1, channels))
    return _Plan(
        fs_mid=fs_mid,
        anti_alias=anti_alias,
        decimation_fir=dec_fir,
        pass1_margin=margin1,
        pass1_block=block1,
        n_mid=n_mid,
        cascade=cascade,
        cascade_margin=cascade_margin,
        up=up,
        down=down,
        resample_fir=res_fir,
        resample_reach=reach,
        pass2_block=block2,
        pass2_group=group,
        n_out=n_out,
    )


def extract_broadband_lfp(
    source: BroadbandSource,
    *,
    settings: LfpSettings,
    max_memory_bytes: int = 2 * 1024**3,
    workdir: Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> LfpStream:
    """Broadband (k, n) volts -> LFP (n_out, n) float32 at ~settings.output_rate_hz (§6.1 2-9).

    Two streamed passes; the working set stays under max_memory_bytes (besides the output,
    n_out * n * 4 bytes, and the source's own buffers). Pass 1 writes the fs_mid signal,
    ceil(k / decimation) * n * 8 bytes, to a temporary .npy in `workdir`, deleted on return and
    on error. on_progress(done, total) is called after every block; the units are samples: the
    k broadband samples of pass 1, then the fs_mid samples of pass 2.
    """
    plan = _plan(source, settings, max_memory_bytes)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    total = int(source.n_samples) + plan.n_mid

    def progress(done: int) -> None:
        if on_progress is not None:
            on_progress(done, total)

    fd, name = tempfile.mkstemp(prefix="lfp-fs-mid-", suffix=".npy", dir=workdir)
    path = Path(name)
    try:
        with os.fdopen(fd, "w+b") as file:
            data_offset, sums = _decimate_to_file(source, plan, settings, file, progress)
            mean = sums / plan.n_mid  # (n,) §6.1 step 4
            lfp = _filter_and_resample(file, data_offset, mean, source, plan, settings, progress)
    finally:
        path.unlink(missing_ok=True)

    rate = plan.fs_mid * plan.up / plan.down
    if settings.linspace_times:
        times = np.linspace(source.start_time, source.end_time, plan.n_out)  # §10 quirk 5
    else:
        times = source.start_time + np.arange(plan.n_out) / rate
    return LfpStream(times=times, lfp=lfp, sampling_rate=rate)


def _decimate_to_file(
    source: BroadbandSource,
    plan: _Plan,
    settings: LfpSettings,
    file: Any,
    progress: Callable[[int], None],
) -> tuple[int, np.ndarray]:
    """Pass 1 (§6.1 steps 2-3): anti-alias, decimate, append (n_mid, n) float64 to `file`.

    Returns the byte offset of the data after the .npy header and the per-channel sums (n,).
    """
    n, channels, decim = int(source.n_samples), int(source.n_channels), settings.decimation
    header = {"descr": "<f8", "fortran_order": False, "shape": (plan.n_mid, channels)}
    np.lib.format.write_array_header_1_0(file, header)
    data_offset = file.tell()
    sums = np.zeros(channels)
    for ka in range(0, plan.n_mid, plan.pass1_block):
        kb = min(ka + plan.pass1_block, plan.n_mid)
        # Output k sits on input k * decim; lo is a multiple of decim (polyphase alignment).
        lo = max(0, ka * decim - plan.pass1_margin)
        lo -= lo % decim
        hi = min(n, (kb - 1) * decim + 1 + plan.pass1_margin)
        raw = np.asarray(source.read(lo, hi), dtype=np.float64)  # (W, n)
        if raw.shape != (hi - lo, channels):
            raise DataError(
                f"broadband source returned shape {raw.shape} for samples [{lo}, {hi}), "
                f"expected {(hi - lo, channels)}; the reader is inconsistent with the file"
            )
        if plan.anti_alias is not None:
            x = sosfiltfilt_time_major(plan.anti_alias, raw)  # (n, W), §6.1 step 2
        else:
            x = np.ascontiguousarray(raw.T)  # (n, W)
        del raw
        if plan.decimation_fir is not None:
            x = resample_window(x, up=1, down=decim, fir=plan.decimation_fir)  # (n, W / D)
        first = lo // decim
        mid = x[:, ka - first : kb - first]  # (n, kb - ka)
        if not np.isfinite(mid).all():
            raise DataError(
                f"broadband samples near [{ka * decim}, {kb * decim}) are not finite (NaN or "
                "inf); the file is damaged — re-download it"
            )
        sums += mid.sum(axis=1)
        np.ascontiguousarray(mid.T).tofile(file)  # (kb - ka, n) time-major
        progress(min(kb * decim, n))
    return data_offset, sums


def _filter_and_resample(
    file: Any,
    data_offset: int,
    mean: np.ndarray,
    source: BroadbandSource,
    plan: _Plan,
    settings: LfpSettings,
    progress: Callable[[int], None],
) -> np.ndarray:
    """Pass 2 (§6.1 steps 4-9) over the fs_mid file; mean (n,); returns (n_out, n) float32."""
    from scipy import signal

    n, channels = int(source.n_samples), int(source.n_channels)
    n_mid, up, down = plan.n_mid, plan.up, plan.down

    def read_mid(lo: int, hi: int) -> np.ndarray:
        file.seek(data_offset + lo * channels * 8)
        values = np.fromfile(file, dtype="<f8", count=(hi - lo) * channels)
        return values.reshape(hi - lo, channels)  # (hi - lo, n)

    lfp = np.empty((plan.n_out, channels), dtype=np.float32)
    block = np.empty((plan.pass2_block, channels))  # (B, n) float64
    for ja in range(0, plan.n_out, plan.pass2_block):
        jb = min(ja + plan.pass2_block, plan.n_out)
        lo_r, hi_r = resample_input_window(
            ja, jb, up=up, down=down, reach=plan.resample_reach, n_samples=n_mid
        )
        lo_f = max(0, lo_r - plan.cascade_margin)
        hi_f = min(n_mid, hi_r + plan.cascade_margin)
        window = read_mid(lo_f, hi_f)  # (W, n)
        first = lo_r * up // down
        for c0 in range(0, channels, plan.pass2_group):
            c1 = min(c0 + plan.pass2_group, channels)
            x = np.ascontiguousarray(window[:, c0:c1].T) - mean[c0:c1, None]  # (g, W)
            x = signal.sosfiltfilt(plan.cascade, x, axis=-1)  # steps 5-7
            x = x[:, lo_r - lo_f : hi_r - lo_f]  # (g, hi_r - lo_r)
            x = resample_window(x, up=up, down=down, fir=plan.resample_fir)  # step 9
            block[: jb - ja, c0:c1] = x[:, ja - first : jb - first].T
        out = block[: jb - ja]  # (jb - ja, n)
        if settings.common_average:
            out -= out.mean(axis=1, keepdims=True)  # step 8
        lfp[ja:jb] = out
        progress(n + min(n_mid, jb * down // up))
    return lfp


def interpolate_to_grid(times: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Linear interpolation per channel onto `grid`, extrapolating linearly past both ends.

    data-sources §6.1 step 10. times (n,) strictly increasing seconds, values (n, C), grid (m,)
    -> (m, C) float32. Outside [times[0], times[-1]] the first / last segment's line is
    continued (interp1d's fill_value="extrapolate"), not held constant like np.interp.
    """
    times = np.asarray(times, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    if times.ndim != 1 or times.size < 2 or len(values) != times.size:
        raise DataError(
            f"interpolation needs >= 2 times matching the values' rows, got times "
            f"{times.shape} and values {np.shape(values)}"
        )
    if not np.all(np.diff(times) > 0):
        raise DataError("interpolation times must be strictly increasing; the LFP clock is broken")
    index = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, times.size - 2)  # (m,)
    out = np.empty((grid.size, *np.shape(values)[1:]), dtype=np.float32)  # (m, C)
    # Blocks of rows keep the float64 temporaries small whatever the session length.
    for start in range(0, grid.size, _INTERPOLATION_BLOCK_ROWS):
        rows = index[start : start + _INTERPOLATION_BLOCK_ROWS]
        left, right = times[rows], times[rows + 1]
        weight = (grid[start : start + rows.size] - left) / (right - left)  # (b,)
        lower = np.asarray(values[rows], dtype=np.float64)  # (b, C)
        upper = np.asarray(values[rows + 1], dtype=np.float64)
        out[start : start + rows.size] = lower + weight.reshape(-1, *[1] * (lower.ndim - 1)) * (
            upper - lower
        )
    return out


def flint_lfp(
    lfp: np.ndarray, *, sampling_rate: float = 2000.0, n_out: int, settings: LfpSettings
) -> np.ndarray:
    """Flint 2 kHz LFP (T, C) -> (n_out, C) float32 on the session grid (data-sources §6.2).

    CAR on the raw LFP first (if settings.common_average), then a zero-phase Butterworth
    low-pass (settings.lowpass_hz, settings.filter_order; SOS), then resampling to n_out samples
    with output j at input position j * T / n_out — the same positions as the original's FFT
    resample, without its periodic wrap-around at the ends. No notch and no high-pass (§10 q. 9).
    When n_out / T reduces to up / down with both <= settings.resample_max_denominator this is
    resample_poly; otherwise (the usual case: the grid length is int((tend - t0) / 0.01)) each
    output is the same Kaiser-windowed sinc evaluated at its fractional position.
    """
    from scipy import signal

    lfp = np.asarray(lfp)
    if lfp.ndim != 2 or lfp.shape[0] < _MIN_SAMPLES or n_out < 1:
        raise DataError(
            f"Flint LFP must be (T >= {_MIN_SAMPLES}, C) with n_out >= 1, got {lfp.shape} and "
            f"n_out={n_out}; check the session's trials"
        )
    length, channels = lfp.shape
    if settings.lowpass_hz >= sampling_rate / 2:
        raise ConfigError(
            f"lfp.lowpass_hz ({settings.lowpass_hz}) must be below Nyquist ({sampling_rate / 2})"
        )
    reference = (
        lfp.mean(axis=1, dtype=np.float64) if settings.common_average else np.zeros(length)
    )  # (T,)
    lowpass = butter_lowpass_sos(settings.lowpass_hz, sampling_rate, order=settings.filter_order)
    ratio = Fraction(n_out, length)
    up, down = ratio.numerator, ratio.denominator
    polyphase = max(up, down) <= settings.resample_max_denominator
    fir = None
    if polyphase:
        fir = resample_fir(
            up,
            down,
            half_width=settings.resample_half_width,
            kaiser_beta=settings.resample_kaiser_beta,
        )
    positions = np.arange(n_out) * (length / n_out)

    out = np.empty((n_out, channels), dtype=np.float32)
    group = max(1, _FLINT_GROUP_ELEMENTS // length)
    for c0 in range(0, channels, group):
        c1 = min(c0 + group, channels)
        x = np.asarray(lfp[:, c0:c1], dtype=np.float64).T - reference  # (g, T)
        if not np.isfinite(x).all():
            raise DataError("Flint LFP contains NaN or inf; the .mat file is damaged")
        x = signal.sosfiltfilt(lowpass, x, axis=-1)  # (g, T)
        if polyphase:
            y = resample_window(x, up=up, down=down, fir=fir)  # (g, n_out)
        else:
            y = resample_at_positions(
                x,
                positions,
                half_width=settings.resample_half_width,
                kaiser_beta=settings.resample_kaiser_beta,
            )  # (g, n_out)
        out[:, c0:c1] = y[:, :n_out].T
    return out
