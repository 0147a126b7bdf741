"""Filter design and block-wise (streamed) zero-phase filtering and polyphase resampling.

Every filter here is meant to run on signals far larger than memory, one block at a time, while
giving the same numbers as the whole-array scipy call. Two ideas make that possible:

- Zero-phase IIR filtering (`scipy.signal.sosfiltfilt`): output block [a, b) is computed from
  input [a - margin, b + margin], clipped at the true ends. A clipped block starts exactly where
  the whole signal starts, so sosfiltfilt's own edge handling (odd extension, steady-state
  initial conditions) is the same as on the whole array; an unclipped block starts from the wrong
  filter state, and that error dies out like the filter's slowest pole, r**k. `zero_phase_margin`
  picks the k at which it is below a relative 1e-9 (data-sources §10 quirks 1 and 3).
- Polyphase resampling (`scipy.signal.resample_poly` with an explicit FIR and
  padtype="antireflect", the odd extension that sosfiltfilt also uses): output j sits at input
  position j * down / up and depends only on the inputs within the FIR's reach. A block whose
  input window starts at a multiple of `down` therefore reproduces the whole-array outputs
  exactly, and the true ends are extended the same way (data-sources §10 quirks 2 and 4).

Arrays here are channel-major, time on the last axis (..., T): scipy.signal's filters run along
a contiguous last axis without a transposing copy. Callers holding time-major (T, C) data
transpose once per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

# scipy.signal is imported inside the functions that use it: it costs ~70 MB and ~1.5 s at import,
# and training commands load this module (through the dataset settings) without filtering.

# Relative size of the state error left at the edge of a block's margin (data-sources §10 q. 1).
MARGIN_RTOL = 1e-9
# Time steps per tile when transposing (T, n) blocks: 1.7x faster than one strided copy.
_TRANSPOSE_TILE = 256


class Block(NamedTuple):
    """One block of a streamed filter's output: samples [start, stop) of the whole result."""

    start: int
    stop: int
    values: np.ndarray  # (..., stop - start)


def butter_lowpass_sos(cutoff_hz: float, fs: float, *, order: int = 2) -> np.ndarray:
    """Butterworth low-pass as second-order sections, shape (ceil(order / 2), 6)."""
    from scipy import signal

    return signal.butter(order, cutoff_hz, btype="lowpass", fs=fs, output="sos")


def butter_highpass_sos(cutoff_hz: float, fs: float, *, order: int = 2) -> np.ndarray:
    """Butterworth high-pass as second-order sections, shape (ceil(order / 2), 6).

    SOS rather than (b, a): the 0.05 Hz high-pass at ~763 Hz puts both poles within 5e-4 of
    z = 1, where the polynomial form loses most of its digits (data-sources §10 quirk 3).
    """
    from scipy import signal

    return signal.butter(order, cutoff_hz, btype="highpass", fs=fs, output="sos")


def notch_harmonics_sos(base_hz: float, fs: float, *, q: float = 30.0) -> np.ndarray:
    """`iirnotch` at base_hz and every harmonic below Nyquist, one section each, (k, 6).

    data-sources §6.1 step 5: 60, 120, ..., 360 Hz at fs ~ 763 Hz. k = 0 when base_hz >= fs / 2
    or base_hz <= 0 (no notch).
    """
    from scipy import signal

    sections = []
    if base_hz > 0:
        harmonic = base_hz
        while harmonic < fs / 2:
            b, a = signal.iirnotch(harmonic, q, fs=fs)
            sections.append(signal.tf2sos(b, a))
            harmonic += base_hz
    if not sections:
        return np.zeros((0, 6))
    return np.concatenate(sections, axis=0)


def zero_phase_margin(sos: np.ndarray, *, rtol: float = MARGIN_RTOL) -> int:
    """Samples of overlap that make blocked sosfiltfilt match the whole-array call to ~rtol.

    A block that starts (or ends) inside the signal begins its forward (or backward) pass from a
    state that is off by about the signal's size; the error decays like k**(p - 1) * r**k, with r
    the largest pole radius and p that pole's multiplicity. The margin is the first k where this
    is below rtol, plus sosfiltfilt's own edge padding.
    """
    sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
    padlen = 3 * (2 * len(sos) + 1)
    poles = np.concatenate([np.roots(section[3:]) for section in sos])
    if poles.size == 0 or np.max(np.abs(poles)) == 0.0:
        return padlen + 2 * len(sos)
    radius = float(np.max(np.abs(poles)))
    if radius >= 1.0:
        raise ValueError(f"filter is not stable: pole radius {radius}")
    slowest = poles[np.argmax(np.abs(poles))]
    multiplicity = int(np.sum(np.abs(poles - slowest) < 1e-6))
    # Solve k**(p-1) * r**k = rtol by fixed-point iteration on k = (log rtol - (p-1) log k) / log r.
    k = math.log(rtol) / math.log(radius)
    for _ in range(50):
        k = (math.log(rtol) - (multiplicity - 1) * math.log(max(k, 1.0))) / math.log(radius)
    return int(math.ceil(k)) + padlen


def zero_phase_blocks(
    sos: np.ndarray,
    read: Callable[[int, int], np.ndarray],
    n_samples: int,
    *,
    block: int,
    margin: int | None = None,
) -> Iterator[Block]:
    """Yield `sosfiltfilt(sos, x, axis=-1)` of a long signal block by block.

    read(start, stop) returns the input samples [start, stop) as (..., stop - start) float64.
    Each yielded block [a, b) is filtered from input [a - margin, b + margin] clipped to
    [0, n_samples), so it equals the whole-array result to ~MARGIN_RTOL of the signal's size,
    exactly at the true ends included (same padtype and padlen as the whole-array call).
    """
    from scipy import signal

    if margin is None:
        margin = zero_phase_margin(sos)
    for a in range(0, n_samples, block):
        b = min(a + block, n_samples)
        lo, hi = max(0, a - margin), min(n_samples, b + margin)
        filtered = signal.sosfiltfilt(sos, read(lo, hi), axis=-1)  # (..., hi - lo)
        yield Block(a, b, filtered[..., a - lo : b - lo])


def sosfiltfilt_time_major(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """`sosfiltfilt(sos, x, axis=0)` of real time-major x (T, n), returned channel-major (n, T).

    Same padding (odd, scipy's default padlen) and initial conditions, bit for bit. Faster for
    many channels: scipy's sosfilt is bound by the latency of its per-sample recursion, not by
    arithmetic, and a real filter applied to a complex signal filters the real and imaginary
    parts independently. Channel c and channel c + ceil(n / 2) share one complex row, which
    halves the recursions; the transpose, the padding and the packing are one copy.
    """
    from scipy import signal

    sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
    length, channels = x.shape
    half = (channels + 1) // 2
    zero_b2 = int(np.sum(sos[:, 2] == 0))
    zero_a2 = int(np.sum(sos[:, 5] == 0))
    pad = 3 * (2 * len(sos) + 1 - min(zero_b2, zero_a2))  # sosfiltfilt's default padlen
    if length <= pad:
        raise ValueError(f"{length} samples are too few for the filter's padding of {pad}")
    ext = np.empty((half, length + 2 * pad), dtype=np.complex128)  # (ceil(n / 2), T + 2 pad)
    real, imag = ext.real, ext.imag
    if channels % 2:
        imag[-1] = 0.0
    for t0 in range(0, length, _TRANSPOSE_TILE):  # tiles: a cache-friendly transpose
        t1 = min(t0 + _TRANSPOSE_TILE, length)
        real[:, pad + t0 : pad + t1] = x[t0:t1, :half].T
        imag[: channels - half, pad + t0 : pad + t1] = x[t0:t1, half:].T
    ext[:, :pad] = 2 * ext[:, pad : pad + 1] - ext[:, 2 * pad : pad : -1]
    end = pad + length
    ext[:, end:] = 2 * ext[:, end - 1 : end] - ext[:, end - 2 : length - 2 : -1]
    zi = signal.sosfilt_zi(sos)[:, None, :]  # (sections, 1, 2)
    forward, _ = signal.sosfilt(sos, ext, axis=-1, zi=zi * ext[None, :, :1])
    backward, _ = signal.sosfilt(sos, forward[:, ::-1], axis=-1, zi=zi * forward[None, :, -1:])
    keep = slice(end - 1, pad - 1, -1)  # undo the reversal, drop the padding
    out = np.empty((channels, length))  # (n, T)
    out[:half] = backward.real[:, keep]
    out[half:] = backward.imag[: channels - half, keep]
    return out


def resample_fir(
    up: int, down: int, *, half_width: int = 10, kaiser_beta: float = 5.0
) -> np.ndarray:
    """The FIR that `resample_poly(x, up, down)` designs by default, made explicit.

    Cutoff at the lower of the two Nyquist rates, 2 * half_width * max(up, down) + 1 taps, Kaiser
    window (scipy's defaults: half_width 10, beta 5). Shape (taps,), unit DC gain at the
    upsampled rate (resample_poly multiplies by `up` itself).
    """
    from scipy import signal

    g = math.gcd(up, down)
    up, down = up // g, down // g
    max_rate = max(up, down)
    half_len = half_width * max_rate
    return signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", kaiser_beta))


def decimation_fir(
    down: int, fs: float, *, passband_hz: float, attenuation_db: float = 80.0
) -> np.ndarray:
    """Shortest Kaiser FIR that decimates by `down` with [0, passband_hz] free of aliases.

    Cutoff at the new Nyquist fs / (2 down), as resample_poly's default, but the transition band
    is as wide as the protected band allows: only input frequencies above fs / down - passband_hz
    fold into [0, passband_hz]. For 24414 Hz / 32 and a 100 Hz passband this is 219 taps instead
    of resample_poly's 641, which is most of the time of the full-rate pass.
    """
    from scipy import signal

    fs_new = fs / down
    if not 0 < passband_hz < fs_new / 2:
        raise ValueError(f"passband {passband_hz} Hz must lie below the new Nyquist {fs_new / 2}")
    width = (fs_new - 2 * passband_hz) / (fs / 2)  # transition width, fraction of Nyquist
    taps, beta = signal.kaiserord(attenuation_db, width)
    taps |= 1  # odd: symmetric about a sample, so outputs land on input samples
    return signal.firwin(taps, 1.0 / down, window=("kaiser", beta))


def resample_reach(fir: np.ndarray, up: int) -> int:
    """Input samples on each side of an output's position that the output depends on."""
    half_len = (len(fir) - 1) // 2  # at the upsampled rate
    return half_len // up + 2


def resample_window(x: np.ndarray, *, up: int, down: int, fir: np.ndarray) -> np.ndarray:
    """`resample_poly(x, up, down, axis=-1, window=fir, padtype="antireflect")`, (..., T_out).

    Output k sits at input position k * down / up (scipy's alignment); T_out = ceil(T up / down).
    """
    from scipy import signal

    return signal.resample_poly(x, up, down, axis=-1, window=fir, padtype="antireflect")


def resample_poly_blocks(
    read: Callable[[int, int], np.ndarray],
    n_samples: int,
    *,
    up: int,
    down: int,
    fir: np.ndarray,
    block: int,
) -> Iterator[Block]:
    """Yield `resample_window` of a long signal block by block, identical to the whole call.

    `block` counts output samples and is rounded up to a multiple of `up`, so every block starts
    at an input position that is a multiple of `down`, where the polyphase phase is the same as
    in the whole-array call; each block reads its outputs' reach on both sides.
    """
    g = math.gcd(up, down)
    up, down = up // g, down // g
    n_out = -(-n_samples * up // down)
    block = -(-block // up) * up
    reach = resample_reach(fir, up)
    for ja in range(0, n_out, block):
        jb = min(ja + block, n_out)
        lo, hi = resample_input_window(ja, jb, up=up, down=down, reach=reach, n_samples=n_samples)
        resampled = resample_window(read(lo, hi), up=up, down=down, fir=fir)  # (..., T_out)
        first = lo * up // down
        yield Block(ja, jb, resampled[..., ja - first : jb - first])


def resample_input_window(
    ja: int, jb: int, *, up: int, down: int, reach: int, n_samples: int
) -> tuple[int, int]:
    """Input window [lo, hi) that outputs [ja, jb) of a polyphase resampler need.

    ja must be a multiple of `up`; lo is a multiple of `down` so the window's polyphase phase
    matches the whole signal's.
    """
    lo = max(0, ja * down // up - reach)
    lo -= lo % down
    hi = min(n_samples, -(-(jb - 1) * down // up) + 1 + reach)
    return lo, hi


def resample_at_positions(
    x: np.ndarray,
    positions: np.ndarray,
    *,
    half_width: int = 10,
    kaiser_beta: float = 5.0,
    chunk_elements: int = 1 << 22,
) -> np.ndarray:
    """Band-limited values of x (..., T) at arbitrary increasing input positions, (..., n).

    For ratios that no short polyphase filter can express (Flint: n_out / T is rarely a small
    fraction). Each output is the Kaiser-windowed sinc of resample_fir evaluated at the output's
    own fractional position: cutoff at the output Nyquist (spacing s = mean position step, in
    input samples; no filtering when s <= 1), half-width `half_width` * s input samples, weights
    normalised to unit sum per output so every phase has unit DC gain. At integer positions
    k * s with integer s this is resample_poly(x, 1, s) with resample_fir(1, s). The ends use
    the odd ("antireflect") extension, like the polyphase paths.
    """
    positions = np.asarray(positions, dtype=np.float64)
    length = x.shape[-1]
    step = float(np.mean(np.diff(positions))) if positions.size > 1 else 1.0
    scale = max(step, 1.0)
    half = half_width * scale  # kernel half-width, input samples
    taps = 2 * int(math.ceil(half)) + 2
    pad = taps + 1
    if length < pad + 1:
        raise ValueError(f"signal of {length} samples is too short for a {taps}-tap kernel")
    head = 2 * x[..., :1] - x[..., pad:0:-1]
    tail = 2 * x[..., -1:] - x[..., -2 : -pad - 2 : -1]
    padded = np.concatenate([head, x, tail], axis=-1)  # (..., T + 2 pad)
    windows = np.lib.stride_tricks.sliding_window_view(padded, taps, axis=-1)  # (..., T', taps)
    first = np.floor(positions).astype(np.int64) - taps // 2 + 1  # first tap, input index
    out = np.empty(x.shape[:-1] + positions.shape, dtype=np.float64)
    leading = int(np.prod(x.shape[:-1], dtype=np.int64))
    chunk = max(1, chunk_elements // (taps * max(leading, 1)))
    for c0 in range(0, positions.size, chunk):
        c1 = min(c0 + chunk, positions.size)
        offsets = positions[c0:c1, None] - (first[c0:c1, None] + np.arange(taps))  # (n, taps)
        inside = np.abs(offsets) <= half
        kaiser = np.zeros_like(offsets)
        kaiser[inside] = np.i0(kaiser_beta * np.sqrt(1.0 - (offsets[inside] / half) ** 2))
        weights = np.sinc(offsets / scale) * kaiser  # (n, taps)
        weights /= weights.sum(axis=1, keepdims=True)
        gathered = windows[..., first[c0:c1] + pad, :]  # (..., n, taps)
        out[..., c0:c1] = np.einsum("...nk,nk->...n", gathered, weights)
    return out
