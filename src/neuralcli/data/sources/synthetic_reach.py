"""Simulated paired spikes, LFP and hand velocity of a reaching monkey ("synthetic-reach").

The offline stand-in for the Makin and Flint sessions of the distillation pipeline
(distillation §1–§2): every session is one `PairedRecording` on a 10 ms grid. It is built to
have the structure that makes spike → LFP distillation worthwhile: spikes carry velocity
clearly, the LFP carries it weakly under large behaviour-unrelated components, and sessions differ
in channel and unit counts while sharing one low-dimensional reach-related latent space.

Generative model of session i (Δ = bin_seconds, t = k·Δ; every random draw from a stream seeded
by (seed, i) only, so a session does not depend on `n_sessions`):

Behaviour. Reaches alternate with holds, starting at the origin. A hold lasts H ~ U(hold range)
with the hand still; a reach goes from the current position p0 to a target p1 uniform in the
unit disc in D ~ U(reach range), along the minimum-jerk path (Flash & Hogan 1985)
    p(t) = p0 + (p1 − p0)·(10τ³ − 15τ⁴ + 6τ⁵),  τ = (t − t_start)/D ∈ [0, 1],
    v(t) = (p1 − p0)/D·(30τ² − 60τ³ + 30τ⁴)      (bell-shaped speed).
The recorded velocity is v z-scored per dimension over the session.

Behaviour latents x(t) ∈ R⁵, the same function of the reach for every session. With u(t) the
z-scored velocity and L = neural_lead_seconds (neurons lead the hand):
    x₁, x₂ = u(t + L)                                       direction-tuned
    x₃ = z(|u(t + L)|)                                       speed, z(·) = z-scored over time
    c(t + Δ) = λ·c(t) + |u(t + L)|, λ = exp((−1/τ_rot + 2πi·f_rot)·Δ)
    x₄, x₅ = z(Re c), z(Im c)                                rotational dynamics kicked by speed

Unrelated latents y(t), independent of behaviour, drawn afresh per session:
    drifts (n_drift_latents):  y(t + Δ) = a·y(t) + √(1 − a²)·ε,  a = exp(−Δ/drift_seconds)
    oscillations (n_oscillation_latents), resonators at f ~ U(oscillation_hz_range):
        y(t) = 2r·cos(2πfΔ)·y(t − Δ) − r²·y(t − 2Δ) + ε,  r = exp(−π·oscillation_bandwidth_hz·Δ),
        then z-scored;  ε ~ N(0, 1) white.

Spikes of unit j (U units, U ~ U{unit_range}); w_j ∈ R⁵ and d_j ∈ R^m are random unit vectors,
b_j ~ N(0, spike_threshold_spread²), m_j ~ LogUniform(count_range) counts per bin:
    η_j(t) = κ·(w_j·x(t) + γ·d_j·y(t) + b_j),   κ = spike_tuning_gain, γ = spike_unrelated_gain
    λ_j(t) = m_j·softplus(η_j(t)) / mean_t softplus(η_j),   s_j(t) ~ Poisson(λ_j(t)) ∧ 255.

LFP of channel c. Like a chronically implanted array, the electrodes are the same in every
session: C ~ U{channel_range} is drawn once per dataset (seed), and every loading matrix M below
is the array's own M_a mixed with a fresh session draw M_s,
    M = √(1 − ρ)·M_a + √ρ·M_s,   ρ = loading_drift (slow changes of the electrode/tissue),
while the units are new in every session (the spikes' w_j, d_j, b_j, m_j and U are per session).
The band-power rhythms' frequencies and tunings q_k are properties of the brain, not of the
session, and are drawn once per dataset too.
    ℓ_c(t) = g_b·A_c·x(t) + g_d·E_c·y_drift(t) + g_o·O_c·y_osc(t) + g_p·P_c·π(t) + σ·n_c(t)
    lfp_c = z(lowpass(ℓ_c))   Butterworth order 4 at lfp_cutoff_hz, zero phase, z-scored.
E_c, O_c, P_c have N(0, 1/dim) entries (expected unit norm); the rows of A (5 × C) are
orthogonal with norm √(C/5), so every behaviour latent reaches the channels with equal power and
LFP decodability does not swing with one session's draw.
    π_k(t) = σ(κ_p·q_k·x(t))·ξ_k(t), scaled to unit mean square (k = 1 … n_power_bands): a
        rhythm ξ_k (resonator at f ~ U(power_hz_range), bandwidth power_bandwidth_hz, z-scored)
        whose amplitude the reach sets through a logistic σ of a random unit direction q_k.
        Velocity sits in its power, not in the sign of the LFP: a linear read-out of the raw LFP
        cannot use it, a model that learns to compute band power can.
    n_c(t + Δ) = a·n_c(t) + √(1 − a²)·ε,  a = exp(−Δ/lfp_noise_seconds): each channel's own
        noise, as slow as the reach, so temporal smoothing alone does not average it away.
g_b is small next to g_d, g_o, g_p and σ: the behaviour-linear part is about 2 % of the LFP
variance (0.65² of 23.7 with the defaults), so reconstructing the LFP is dominated by
behaviour-unrelated structure, while a read-out that knows which directions (and band powers)
matter still finds velocity. All filters run on a grid padded by 5 s on both sides so that the
kept bins carry no start-up transients.

With the defaults, OLS on the raw z-scored LFP reaches held-out velocity R² of about 0.1–0.35 and
OLS on Gaussian-smoothed counts (σ = 5 bins) about 0.6–0.8, on every default session
(`synthetic_reach_report`, last 20 % of each session held out).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neuralcli.data.recording import PairedRecording
from neuralcli.data.sources.checks import check_float, check_int, check_range
from neuralcli.evaluation.decoding import (
    contiguous_split_labels,
    decode_splits,
    smooth_counts,
)

# scipy.signal is imported inside the simulating functions: it costs ~70 MB and ~1.5 s at import,
# and every command imports this module (for its settings) while only simulating needs scipy.

DATASET = "synthetic-reach"
PAD_SECONDS = 5.0  # simulated before and after the kept bins, then dropped
# Entropy of the dataset-wide "array" stream, out of reach of any session index.
ARRAY_STREAM = 2**32 - 1
LFP_FILTER_ORDER = 4
# Gaussian kernel applied to counts before decoding velocity from spikes (the report).
REPORT_SMOOTHING_SIGMA_BINS = 5.0


@dataclass(frozen=True)
class SyntheticReachSettings:
    """Every parameter of the synthetic-reach dataset; see the module docstring for the model."""

    n_sessions: int = 12  # sessions s00, s01, ...
    seed: int = 0  # with the session index, the only source of randomness
    seconds_per_session: float = 400.0  # 40 10 s segments: 62 train 5 s segments per session
    bin_seconds: float = 0.01  # grid spacing of every stream
    channel_range: tuple[int, int] = (24, 48)  # LFP channels of the array (all sessions), inclusive
    unit_range: tuple[int, int] = (30, 80)  # sorted units per session, inclusive
    loading_drift: float = 0.2  # ρ: share of each LFP loading's variance that is new per session
    reach_seconds_range: tuple[float, float] = (0.5, 1.0)  # duration of one reach
    hold_seconds_range: tuple[float, float] = (0.2, 0.8)  # still hand between reaches
    neural_lead_seconds: float = 0.1  # latents lead the hand by this much
    rotation_hz: float = 1.5  # frequency of the shared rotational dynamics
    rotation_decay_seconds: float = 0.2  # their decay time constant
    n_drift_latents: int = 3  # slow behaviour-unrelated random walks (OU)
    drift_seconds: float = 2.0  # their time constant
    n_oscillation_latents: int = 3  # behaviour-unrelated narrow-band rhythms
    oscillation_hz_range: tuple[float, float] = (3.0, 12.0)  # their centre frequencies
    oscillation_bandwidth_hz: float = 2.0  # their bandwidth (burstiness)
    count_range: tuple[float, float] = (0.05, 0.5)  # per-unit mean count per bin, log-uniform
    spike_tuning_gain: float = 1.5  # κ: depth of the softplus tuning
    spike_unrelated_gain: float = 0.7  # γ: weight of unrelated latents in the spike drive
    spike_threshold_spread: float = 0.5  # std of the per-unit offset b_j
    lfp_behaviour_gain: float = 0.65  # g_b
    lfp_drift_gain: float = 3.0  # g_d
    lfp_oscillation_gain: float = 2.0  # g_o
    n_power_bands: int = 8  # K: rhythms whose amplitude the reach modulates
    power_hz_range: tuple[float, float] = (14.0, 26.0)  # their centre frequencies (beta band)
    power_bandwidth_hz: float = 8.0  # their bandwidth: wide, so that power is quick to estimate
    power_tuning_gain: float = 3.0  # κ_p: depth of the amplitude tuning
    lfp_power_gain: float = 2.5  # g_p
    lfp_noise_std: float = 2.0  # σ: std of each channel's own noise
    lfp_noise_seconds: float = 0.2  # its time constant: as slow as the reach
    lfp_cutoff_hz: float = 40.0  # low-pass corner of the LFP

    def __post_init__(self) -> None:
        for name, minimum in (
            ("n_sessions", 1),
            ("seed", 0),
            ("n_drift_latents", 0),
            ("n_oscillation_latents", 0),
            ("n_power_bands", 0),
        ):
            check_int(name, getattr(self, name), minimum)
        for name in (
            "seconds_per_session",
            "bin_seconds",
            "rotation_hz",
            "rotation_decay_seconds",
            "drift_seconds",
            "lfp_noise_seconds",
            "oscillation_bandwidth_hz",
            "power_bandwidth_hz",
            "spike_tuning_gain",
            "power_tuning_gain",
            "lfp_cutoff_hz",
        ):
            check_float(name, getattr(self, name), minimum=0.0, inclusive=False)
        for name in (
            "neural_lead_seconds",
            "spike_unrelated_gain",
            "spike_threshold_spread",
            "lfp_behaviour_gain",
            "lfp_drift_gain",
            "lfp_oscillation_gain",
            "lfp_power_gain",
            "lfp_noise_std",
            "loading_drift",
        ):
            check_float(name, getattr(self, name), minimum=0.0, inclusive=True)
        if self.loading_drift > 1.0:
            raise ValueError(f"loading_drift must be <= 1, got {self.loading_drift}")
        for name in ("channel_range", "unit_range"):
            check_range(name, getattr(self, name), integer=True, minimum=1)
        for name in (
            "reach_seconds_range",
            "hold_seconds_range",
            "oscillation_hz_range",
            "power_hz_range",
        ):
            check_range(name, getattr(self, name), minimum=0.0)
        check_range("count_range", self.count_range, minimum=0.0)
        if self.count_range[0] <= 0:
            raise ValueError(f"count_range must be positive, got {tuple(self.count_range)}")
        if self.reach_seconds_range[0] <= 0:
            raise ValueError(
                f"reach_seconds_range must be positive, got {tuple(self.reach_seconds_range)}"
            )
        nyquist = 0.5 / self.bin_seconds
        if self.lfp_cutoff_hz >= nyquist:
            raise ValueError(
                f"lfp_cutoff_hz must be below the Nyquist frequency {nyquist:g} Hz of "
                f"bin_seconds={self.bin_seconds:g}, got {self.lfp_cutoff_hz:g}"
            )
        for name in ("oscillation_hz_range", "power_hz_range"):
            if getattr(self, name)[1] >= nyquist:
                raise ValueError(
                    f"{name} must stay below the Nyquist frequency {nyquist:g} Hz, "
                    f"got {tuple(getattr(self, name))}"
                )
        if round(self.seconds_per_session / self.bin_seconds) < 100:
            raise ValueError(
                "seconds_per_session must span at least 100 bins of bin_seconds, got "
                f"{self.seconds_per_session:g} s of {self.bin_seconds:g} s bins"
            )
        if self.n_drift_latents + self.n_oscillation_latents < 1:
            raise ValueError(
                "n_drift_latents + n_oscillation_latents must be at least 1 (the LFP needs "
                "behaviour-unrelated structure)"
            )
        # YAML may give lists and ints: normalise so equal settings compare and hash equally.
        for name in ("channel_range", "unit_range"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        for name in (
            "reach_seconds_range",
            "hold_seconds_range",
            "oscillation_hz_range",
            "power_hz_range",
            "count_range",
        ):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) suitable for settings.yaml."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, tuple):
                data[name] = list(value)
        return data

    @property
    def n_bins(self) -> int:
        """Kept bins per session."""
        return int(round(self.seconds_per_session / self.bin_seconds))


def session_name(index: int) -> str:
    return f"s{index:02d}"


def simulate_sessions(settings: SyntheticReachSettings | None = None) -> list[PairedRecording]:
    """Sessions s00 … s{n_sessions − 1}, each as `simulate_session` gives it."""
    settings = settings or SyntheticReachSettings()
    return [simulate_session(settings, index) for index in range(settings.n_sessions)]


def simulate_session(settings: SyntheticReachSettings, index: int) -> PairedRecording:
    """Session `index` of the dataset: a pure function of (settings without n_sessions, index).

    Returns lfp (n, C) float32 z-scored per channel, spikes (n, U) uint8, velocity (n, 2)
    float32 z-scored per dimension, n = settings.n_bins.
    """
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise ValueError(f"index must be a non-negative integer, got {index!r}")
    dt = settings.bin_seconds
    n = settings.n_bins
    pad = int(math.ceil(PAD_SECONDS / dt))
    lead = int(round(settings.neural_lead_seconds / dt))
    # Independent streams: the session's shape (C, U, loadings) does not move with its length.
    reach_seq, latent_seq, spike_seq, lfp_seq = np.random.SeedSequence(
        [settings.seed, int(index)]
    ).spawn(4)
    reach_rng = np.random.default_rng(reach_seq)
    latent_rng = np.random.default_rng(latent_seq)
    spike_rng = np.random.default_rng(spike_seq)
    lfp_rng = np.random.default_rng(lfp_seq)

    n_total = pad + n + lead + pad
    velocity = reach_velocity(settings, n_total, reach_rng)  # (n_total, 2)
    behaviour = behaviour_latents(settings, velocity)  # (n_total, 5), latent at t is hand at t+L
    # Latent bin k (of the padded grid) drives neurons at time k; it encodes the hand at k+lead.
    behaviour = behaviour[: n_total - lead]  # (pad + n + pad, 5)
    drifts, oscillations = unrelated_latents(settings, n_total - lead, latent_rng)
    kept = slice(pad, pad + n)

    unrelated = np.concatenate([drifts, oscillations], axis=1)  # (pad + n + pad, m)
    spikes = _spikes(settings, behaviour, unrelated, kept, spike_rng)  # (n, U)
    lfp = _lfp(settings, behaviour, drifts, oscillations, kept, lfp_rng)
    hand = velocity[kept]  # (n, 2)
    hand = (hand - hand.mean(axis=0)) / _safe_std(hand)
    recording = PairedRecording(
        dataset=DATASET,
        session=session_name(int(index)),
        times=np.arange(n, dtype=np.float64) * dt,
        lfp=lfp,
        spikes=spikes,
        velocity=hand.astype(np.float32),
        channel_names=[f"lfp {c:03d}" for c in range(lfp.shape[1])],
        unit_names=[f"unit {u:03d}" for u in range(spikes.shape[1])],
        bin_seconds=float(dt),
    )
    recording.check()
    return recording


def reach_velocity(
    settings: SyntheticReachSettings, n_bins: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_bins, 2) float64 hand velocity (unit disc per second) of alternating holds and reaches.

    Sampled at bin starts t = k·Δ; each reach follows the minimum-jerk profile.
    """
    dt = settings.bin_seconds
    duration = n_bins * dt
    # Each hold + reach lasts at least the two lower bounds; draw enough for the whole span.
    shortest = settings.hold_seconds_range[0] + settings.reach_seconds_range[0]
    n_reaches = int(math.ceil(duration / max(shortest, dt))) + 1
    holds = rng.uniform(*settings.hold_seconds_range, size=n_reaches)
    reaches = rng.uniform(*settings.reach_seconds_range, size=n_reaches)
    radius = np.sqrt(rng.uniform(size=n_reaches))  # uniform in the unit disc
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n_reaches)
    targets = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # (R, 2)
    # (R, 2) where each reach leaves from: the origin, then the previous target.
    starts = np.concatenate([np.zeros((1, 2)), targets[:-1]])
    onsets = np.cumsum(holds + np.concatenate([[0.0], reaches[:-1]]))  # (R,) reach start times

    times = np.arange(n_bins) * dt  # (n,)
    which = np.searchsorted(onsets, times, side="right") - 1  # reach that last started
    velocity = np.zeros((n_bins, 2))
    moving = which >= 0
    tau = np.zeros(n_bins)
    tau[moving] = (times[moving] - onsets[which[moving]]) / reaches[which[moving]]
    moving &= tau < 1.0
    r = which[moving]
    s = tau[moving]
    speed_profile = (30 * s**2 - 60 * s**3 + 30 * s**4) / reaches[r]  # minimum jerk, dτ/dt = 1/D
    velocity[moving] = (targets[r] - starts[r]) * speed_profile[:, None]
    return velocity


def behaviour_latents(settings: SyntheticReachSettings, velocity: np.ndarray) -> np.ndarray:
    """(n, 2) velocity -> (n, 5) float64 latents [u_x, u_y, speed, rot_1, rot_2] of the hand at
    t + neural_lead_seconds (rows past the end repeat the last sample).
    """
    from scipy.signal import lfilter

    lead = int(round(settings.neural_lead_seconds / settings.bin_seconds))
    ahead = np.concatenate([velocity[lead:], np.repeat(velocity[-1:], lead, axis=0)])  # (n, 2)
    u = _zscore(ahead)
    speed = np.linalg.norm(u, axis=1)  # (n,)
    # Rotational state: a damped complex resonator kicked by speed (one-pole complex IIR).
    rate = -1.0 / settings.rotation_decay_seconds + 2j * np.pi * settings.rotation_hz
    pole = np.exp(rate * settings.bin_seconds)
    rotation = lfilter([1.0], [1.0, -pole], speed.astype(np.complex128))  # (n,)
    return _zscore(np.stack([u[:, 0], u[:, 1], speed, rotation.real, rotation.imag], axis=1))


def unrelated_latents(
    settings: SyntheticReachSettings, n_bins: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Behaviour-unrelated latents: drifts (n, n_drift) and oscillations (n, n_osc), float64,
    each of unit variance (drifts in expectation, oscillations exactly).
    """
    from scipy.signal import lfilter

    dt = settings.bin_seconds
    a = math.exp(-dt / settings.drift_seconds)
    noise = rng.standard_normal((n_bins, settings.n_drift_latents))
    initial = rng.standard_normal(settings.n_drift_latents)  # stationary start
    drifts = lfilter([math.sqrt(1 - a * a)], [1.0, -a], noise, axis=0, zi=(a * initial)[None])[0]

    frequencies = rng.uniform(*settings.oscillation_hz_range, size=settings.n_oscillation_latents)
    noise = rng.standard_normal((n_bins, settings.n_oscillation_latents))
    oscillations = _resonators(frequencies, settings.oscillation_bandwidth_hz, dt, noise)
    return drifts, _zscore(oscillations)


def band_power_sources(
    settings: SyntheticReachSettings,
    behaviour: np.ndarray,
    rng: np.random.Generator,
    array_rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(n, 5) behaviour latents -> (n, K) rhythms whose amplitude the reach sets, float64.

    Source k is a resonator ξ_k at f_k ~ U(power_hz_range) times the envelope σ(κ_p·q_k·x(t))
    (σ the logistic function, q_k a random unit vector), scaled to unit mean square: velocity is
    in the power of these rhythms, not in the sign of the LFP. q_k and f_k come from `array_rng`
    (the same for every session of a dataset) when given, else from `rng`; the carriers' noise
    always comes from `rng`.
    """
    n_bins, n_bands = behaviour.shape[0], settings.n_power_bands
    fixed = array_rng if array_rng is not None else rng
    tuning = unit_rows(fixed, n_bands, behaviour.shape[1])  # (K, 5)
    frequencies = fixed.uniform(*settings.power_hz_range, size=n_bands)
    noise = rng.standard_normal((n_bins, n_bands))
    carriers = _resonators(frequencies, settings.power_bandwidth_hz, settings.bin_seconds, noise)
    # A saturating envelope: fast reaches must not make the LFP heavy-tailed.
    envelopes = _sigmoid(settings.power_tuning_gain * behaviour @ tuning.T)  # (n, K)
    sources = envelopes * _zscore(carriers)
    return sources / np.sqrt((sources**2).mean(axis=0))


def _resonators(
    frequencies: np.ndarray, bandwidth_hz: float, dt: float, noise: np.ndarray
) -> np.ndarray:
    """Narrow-band noise: (n, K) white noise through one AR(2) resonator per column."""
    from scipy.signal import lfilter

    r = math.exp(-math.pi * bandwidth_hz * dt)
    out = np.empty_like(noise)
    for k, frequency in enumerate(frequencies):
        theta = 2 * math.pi * frequency * dt
        out[:, k] = lfilter([1.0], [1.0, -2 * r * math.cos(theta), r * r], noise[:, k])
    return out


def _spikes(
    settings: SyntheticReachSettings,
    behaviour: np.ndarray,
    unrelated: np.ndarray,
    kept: slice,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n_pad, 5), (n_pad, m) latents -> (n, U) uint8 Poisson counts on the kept bins."""
    n_units = int(rng.integers(settings.unit_range[0], settings.unit_range[1] + 1))
    tuning = unit_rows(rng, n_units, behaviour.shape[1])  # (U, 5)
    mixing = unit_rows(rng, n_units, unrelated.shape[1])  # (U, m)
    offsets = rng.normal(0.0, settings.spike_threshold_spread, size=n_units)  # (U,)
    low, high = np.log(settings.count_range)
    means = np.exp(rng.uniform(low, high, size=n_units))  # (U,) counts per bin
    drive = (
        behaviour[kept] @ tuning.T
        + settings.spike_unrelated_gain * unrelated[kept] @ mixing.T
        + offsets
    )  # (n, U)
    rates = np.logaddexp(0.0, settings.spike_tuning_gain * drive)  # softplus, (n, U)
    rates *= means / rates.mean(axis=0)
    return np.minimum(rng.poisson(rates), 255).astype(np.uint8)


def _lfp(
    settings: SyntheticReachSettings,
    behaviour: np.ndarray,
    drifts: np.ndarray,
    oscillations: np.ndarray,
    kept: slice,
    rng: np.random.Generator,
) -> np.ndarray:
    """Latents on the padded grid -> (n, C) float32 low-passed, z-scored LFP on the kept bins."""
    from scipy.signal import butter, lfilter, sosfiltfilt

    array_rng = np.random.default_rng(np.random.SeedSequence([settings.seed, ARRAY_STREAM]))
    n_channels = int(array_rng.integers(settings.channel_range[0], settings.channel_range[1] + 1))
    shapes = (behaviour.shape[1], drifts.shape[1], oscillations.shape[1], settings.n_power_bands)
    array_loadings = [_gaussian_loadings(array_rng, dim, n_channels) for dim in shapes]
    session_loadings = [_gaussian_loadings(rng, dim, n_channels) for dim in shapes]
    keep, new = math.sqrt(1.0 - settings.loading_drift), math.sqrt(settings.loading_drift)
    behaviour_loadings, drift_loadings, oscillation_loadings, power_loadings = (
        keep * fixed + new * fresh
        for fixed, fresh in zip(array_loadings, session_loadings, strict=True)
    )  # (5, C), (n_drift, C), (n_osc, C), (K, C)
    behaviour_loadings = _balanced(behaviour_loadings)
    power = band_power_sources(settings, behaviour, rng, array_rng)  # (n_pad, K)
    raw = settings.lfp_behaviour_gain * behaviour @ behaviour_loadings  # (n_pad, C)
    raw += settings.lfp_drift_gain * drifts @ drift_loadings
    raw += settings.lfp_oscillation_gain * oscillations @ oscillation_loadings
    raw += settings.lfp_power_gain * power @ power_loadings
    # Each channel's own noise is an OU process (a 1/f² spectrum above 1/(2π·τ_n)).
    a = math.exp(-settings.bin_seconds / settings.lfp_noise_seconds)
    noise = lfilter([math.sqrt(1 - a * a)], [1.0, -a], rng.standard_normal(raw.shape), axis=0)
    raw += settings.lfp_noise_std * noise  # (n_pad, C)
    sampling_hz = 1.0 / settings.bin_seconds
    sos = butter(LFP_FILTER_ORDER, settings.lfp_cutoff_hz, fs=sampling_hz, output="sos")
    lfp = sosfiltfilt(sos, raw, axis=0)[kept]  # (n, C)
    return _zscore(lfp).astype(np.float32)


def unit_rows(rng: np.random.Generator, n_rows: int, dim: int) -> np.ndarray:
    """(n_rows, dim) rows drawn uniformly on the unit sphere (zeros when dim = 0)."""
    rows = rng.standard_normal((n_rows, dim))
    if dim == 0:
        return rows
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _gaussian_loadings(rng: np.random.Generator, dim: int, n_channels: int) -> np.ndarray:
    """(dim, C) loadings with N(0, 1/dim) entries: each channel's column has unit expected norm."""
    return rng.standard_normal((dim, n_channels)) / math.sqrt(max(dim, 1))


def _balanced(loadings: np.ndarray) -> np.ndarray:
    """(dim, C) loadings -> orthogonal rows of equal norm √(C/dim) spanning the same space
    (unchanged when C < dim).

    Every behaviour latent then reaches the channels with the same total power, which keeps the
    decodability of the LFP from swinging with the luck of one session's draw.
    """
    dim, n_channels = loadings.shape
    if n_channels < dim:
        return loadings
    basis, _ = np.linalg.qr(loadings.T)  # (C, dim) orthonormal columns
    return basis.T * math.sqrt(n_channels / dim)


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def _zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean(axis=0)) / _safe_std(values)


def _safe_std(values: np.ndarray) -> np.ndarray:
    std = values.std(axis=0)
    return np.where(std > 0, std, 1.0)


def synthetic_reach_report(
    recording: PairedRecording,
    split_labels_per_bin: np.ndarray | None = None,
    *,
    sigma_bins: float = REPORT_SMOOTHING_SIGMA_BINS,
) -> dict[str, Any]:
    """How well velocity decodes linearly from spikes and from LFP, on the same bins.

    Spikes: counts smoothed with a Gaussian of `sigma_bins` bins; LFP: the z-scored channels as
    they are (no lags). One OLS decoder each (distillation §9), fit on the "train" bins and scored
    on "val" + "test" pooled; without `split_labels_per_bin` ((n_bins,) strings) the first 80 % of
    the bins train and the last 20 % are held out. Works on any `PairedRecording`.
    """
    labels = (
        contiguous_split_labels(recording.n_bins)
        if split_labels_per_bin is None
        else np.asarray(split_labels_per_bin)
    )
    spikes = decode_splits(smooth_counts(recording.spikes, sigma_bins), recording.velocity, labels)
    lfp = decode_splits(recording.lfp, recording.velocity, labels)
    return {
        "session": recording.session,
        "n_channels": int(recording.lfp.shape[1]),
        "n_units": int(recording.spikes.shape[1]),
        "mean_count_per_bin": float(recording.spikes.mean()),
        "spikes_r2": spikes.heldout_r2,
        "lfp_r2": lfp.heldout_r2,
        "spikes_train_r2": spikes.train_r2,
        "lfp_train_r2": lfp.train_r2,
        "n_train": spikes.n_train,
        "n_heldout": spikes.n_heldout,
        "sigma_bins": float(sigma_bins),
    }
