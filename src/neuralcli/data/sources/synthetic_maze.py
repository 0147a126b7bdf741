"""Simulated MC_Maze-like reach trials for LDNS ("synthetic-maze").

The offline stand-in for the MC_Maze trial tensors of LDNS (data-sources §3.1): trials of
n_bins = 140 bins of 5 ms around movement onset, 182 Poisson neurons, hand velocity in m/s
lagged by +100 ms, and the reach angle θ read from the velocity at behaviour bin 50. It is built
so that conditioning can be checked: rates depend on velocity strongly enough that velocity is
linearly decodable from smoothed spikes: OLS R² 0.90 on held-out trials with the defaults
(`synthetic_maze_report`, σ = 20 ms), about the 0.89 of the real data's AE rates (LDNS §11.3).

Time. Δ = bin_seconds; neural bin k covers t_k = (k − onset_bin)·Δ relative to movement onset
(defaults: [−250, +450) ms); behaviour bin k is the hand at t_k + L, L = lag_seconds (+100 ms:
neurons lead the hand), so neural bin k and behaviour bin k are aligned as in MC_Maze.

Reach of trial i (each quantity from its own random stream; see "Randomness"):
    condition c_i ~ U{0 … K−1}, K = n_conditions, with direction φ_c = 2πc/K and curvature
        κ_c ~ U(−curvature_degrees, +curvature_degrees) (fixed per condition);
    direction φ_i = φ_{c_i} + N(0, direction_jitter_degrees²), distance d_i ~ U(distance range),
    duration D_i ~ U(duration range), onset o_i ~ U(−onset_jitter, +onset_jitter) seconds.
The hand follows a minimum-jerk speed profile (Flash & Hogan 1985) along a heading that turns by
κ_c over the reach (MC_Maze reaches curve round barriers):
    τ = (t + L − o_i)/D_i ∈ [0, 1),  s(τ) = 10τ³ − 15τ⁴ + 6τ⁵
    speed(t) = d_i/D_i · (30τ² − 60τ³ + 30τ⁴),  heading(t) = φ_i + κ_c·s(τ)
    v(t) = speed(t)·[cos heading(t), sin heading(t)]  m/s, zero outside the reach.
Peak speed 1.875·d/D: 0.3 … 1.0 m/s with the defaults. θ_i = atan2(v_y, v_x) at behaviour bin
angle_bin (50: 100 ms after onset), computed from the stored float32 velocity.

Latent factors at neural bin k (F = 5 + M), u = v(t_k + L)/velocity_scale:
    x₁, x₂ = u                                       direction-tuned
    x₃ = |u|                                         speed-tuned
    r(k) = λ·r(k−1) + (1 − λ)·|u(k)|, r(−1) = 0,     rotational dynamics kicked by speed,
        λ = exp((−1/τ_rot + 2πi·f_rot)·Δ)            (unit gain at DC; Churchland et al. 2012)
    x₄, x₅ = g_rot·(Re r, Im r)
    y_m(k + 1) = a·y_m(k) + √(1 − a²)·ε, a = exp(−Δ/τ_y), y_m(0) ~ N(0, 1)
        (m = 1 … M = n_nuisance_latents): behaviour-unrelated, stationary, unit variance.

Neuron j (N = n_neurons): w_j ∈ R⁵ and q_j ∈ R^M random unit vectors, b_j ~ N(bias_mean,
bias_std²), resting count m_j ~ LogUniform(baseline_count_range) per bin:
    η_j(k) = g·w_j·x(k) + γ·q_j·y(k) + b_j,   g = tuning_gain, γ = nuisance_gain
    λ_j(k) = m_j · softplus(η_j(k)) / softplus(b_j)   (= m_j with the hand at rest and y = 0)
    s_j(k) ~ Poisson(λ_j(k)) ∧ 255.
Equivalently λ = softplus(W·x + b)·m/softplus(b) with W = [g·w_j, γ·q_j] the (N, F) readout;
`synthetic_maze_rates` recomputes λ exactly from the stored factors, readout, bias and baseline.

Randomness: one `SeedSequence(seed)` spawns independent streams for the conditions, the neurons,
each per-trial quantity, the nuisance latents, the spikes and the split. Per-trial draws are
elementwise in trial order, so trial i (its reach, factors and spikes) does not depend on
n_trials; the split (a seeded permutation, train/val/test fractions) does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from neuralcli.data.sources.checks import check_float, check_int, check_range
from neuralcli.data.sources.mc_maze import reach_angle
from neuralcli.data.sources.synthetic_reach import unit_rows
from neuralcli.evaluation.decoding import r2_score

# scipy is imported inside the simulating functions: scipy.signal alone costs ~70 MB and ~1.5 s at
# import, and every command imports this module for `SyntheticMazeSettings`.

DATASET = "synthetic-maze"
SPLIT_NAMES = ("train", "val", "test")
N_BEHAVIOUR_FACTORS = 5  # u_x, u_y, |u|, rotation re, rotation im
# Trials per block of rates and counts: bounds the float temporaries (182 neurons x 140 bins).
_SPIKE_CHUNK = 256
# Gaussian smoothing of counts before the decodability report: 4 bins = 20 ms.
REPORT_SMOOTHING_SIGMA_BINS = 4.0


@dataclass(frozen=True)
class SyntheticMazeSettings:
    """Every parameter of the synthetic-maze dataset; see the module docstring for the model.

    Defaults are the full dataset: 2295 trials like the MC_Maze train file (data-sources §3),
    a few seconds to simulate on one core (mostly the Poisson draws). A quick preset can use a
    few hundred trials.
    """

    n_trials: int = 2295
    n_neurons: int = 182
    n_bins: int = 140
    bin_seconds: float = 0.005
    onset_bin: int = 50  # neural bin of movement onset: the window starts 250 ms before it
    lag_seconds: float = 0.1  # behaviour bin k is the hand at neural time t_k + lag (§3.1 step 5)
    angle_bin: int = 50  # behaviour bin at which θ = atan2(v_y, v_x) is read (§3.1 step 7)
    seed: int = 0
    n_conditions: int = 24  # reach directions 2πc/K
    direction_jitter_degrees: float = 5.0  # per-trial spread round the condition's direction
    curvature_degrees: float = 30.0  # heading change over a reach, κ_c ~ U(−x, x) per condition
    distance_range: tuple[float, float] = (0.08, 0.16)  # reach length, metres
    duration_range: tuple[float, float] = (0.3, 0.5)  # reach duration, seconds
    onset_jitter_seconds: float = 0.02  # true onset o_i ~ U(−x, x) round the aligned onset
    velocity_scale: float = 0.5  # m/s per latent unit
    rotation_hz: float = 2.0  # f_rot
    rotation_decay_seconds: float = 0.15  # τ_rot
    rotation_gain: float = 2.0  # g_rot
    n_nuisance_latents: int = 2  # M
    nuisance_seconds: float = 0.3  # τ_y
    nuisance_gain: float = 0.5  # γ
    tuning_gain: float = 2.0  # g
    bias_mean: float = 0.0
    bias_std: float = 0.5
    baseline_count_range: tuple[float, float] = (0.02, 0.2)  # resting counts per bin (4-40 Hz)
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test

    def __post_init__(self) -> None:
        for name, minimum in (
            ("n_trials", 1),
            ("n_neurons", 1),
            ("n_bins", 1),
            ("onset_bin", 0),
            ("angle_bin", 0),
            ("seed", 0),
            ("n_conditions", 1),
            ("n_nuisance_latents", 0),
        ):
            check_int(name, getattr(self, name), minimum)
        if self.angle_bin >= self.n_bins:
            raise ValueError(f"angle_bin must be below n_bins={self.n_bins}, got {self.angle_bin}")
        for name in (
            "bin_seconds",
            "velocity_scale",
            "rotation_decay_seconds",
            "nuisance_seconds",
            "bias_std",
        ):
            check_float(name, getattr(self, name), minimum=0.0, inclusive=False)
        for name in (
            "lag_seconds",
            "direction_jitter_degrees",
            "curvature_degrees",
            "onset_jitter_seconds",
            "rotation_hz",
            "rotation_gain",
            "nuisance_gain",
            "tuning_gain",
        ):
            check_float(name, getattr(self, name), minimum=0.0, inclusive=True)
        check_float("bias_mean", self.bias_mean, minimum=-math.inf, inclusive=True)
        for name in ("distance_range", "duration_range", "baseline_count_range"):
            check_range(name, getattr(self, name), minimum=0.0, inclusive=False)
        fractions = self.split_fractions
        if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__len__"):
            raise ValueError(f"split_fractions must be 3 numbers, got {fractions!r}")
        if len(fractions) != 3:
            raise ValueError(
                f"split_fractions must be 3 numbers (train, val, test), got {fractions}"
            )
        for value in fractions:
            check_float("split_fractions", value, minimum=0.0, inclusive=True)
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must sum to 1, got {tuple(fractions)}")
        # YAML gives lists and may give 1 for 1.0: normalise so equal settings hash equally.
        for name in ("distance_range", "duration_range", "baseline_count_range", "split_fractions"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        for name, value in asdict(self).items():
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                object.__setattr__(self, name, int(value))
            elif isinstance(value, (float, np.floating)):
                object.__setattr__(self, name, float(value))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) suitable for settings.yaml."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def n_factors(self) -> int:
        """F = 5 behaviour factors + n_nuisance_latents."""
        return N_BEHAVIOUR_FACTORS + self.n_nuisance_latents

    @property
    def window_seconds(self) -> tuple[float, float]:
        """Neural window [start, stop) relative to movement onset, in seconds."""
        start = -self.onset_bin * self.bin_seconds
        return start, start + self.n_bins * self.bin_seconds


class SyntheticMazeData(NamedTuple):
    spikes: np.ndarray  # (n_trials, n_bins, N) uint8 counts
    velocity: np.ndarray  # (n_trials, n_bins, 2) float32 m/s, lagged by lag_seconds
    angle: np.ndarray  # (n_trials,) float64 θ = atan2(v_y, v_x) at angle_bin, radians
    condition: np.ndarray  # (n_trials,) int64 reach condition c_i
    split: np.ndarray  # (n_trials,) str "train" | "val" | "test"
    factors: np.ndarray  # (n_trials, n_bins, F) float32 latent factors x, y
    readout: np.ndarray  # (N, F) float32 W
    bias: np.ndarray  # (N,) float32 b
    baseline: np.ndarray  # (N,) float32 resting counts per bin m


class _Streams(NamedTuple):
    conditions: np.random.Generator
    neurons: np.random.Generator
    condition_choice: np.random.Generator
    direction: np.random.Generator
    distance: np.random.Generator
    duration: np.random.Generator
    onset: np.random.Generator
    nuisance: np.random.Generator
    spikes: np.random.Generator
    split: np.random.Generator


def simulate_synthetic_maze(settings: SyntheticMazeSettings | None = None) -> SyntheticMazeData:
    """Simulate the dataset described by `settings` (module docstring): a pure function of it."""
    settings = settings or SyntheticMazeSettings()
    streams = _Streams(
        *(np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(10))
    )
    n = settings.n_trials
    directions = 2 * np.pi * np.arange(settings.n_conditions) / settings.n_conditions  # (K,)
    curvature = math.radians(settings.curvature_degrees)
    curvatures = streams.conditions.uniform(-curvature, curvature, settings.n_conditions)  # (K,)
    condition = streams.condition_choice.integers(0, settings.n_conditions, n)  # (n,)
    jitter = math.radians(settings.direction_jitter_degrees)
    reaches = Reaches(
        direction=directions[condition] + jitter * streams.direction.standard_normal(n),
        curvature=curvatures[condition],
        distance=streams.distance.uniform(*settings.distance_range, n),
        duration=streams.duration.uniform(*settings.duration_range, n),
        onset=streams.onset.uniform(-1.0, 1.0, n) * settings.onset_jitter_seconds,
    )
    velocity = reach_velocity(settings, reaches).astype(np.float32)  # (n, T, 2)
    angle = reach_angle(velocity, settings.angle_bin)  # (n,)
    nuisance = nuisance_latents(settings, streams.nuisance)  # (n, T, M)
    factors = np.concatenate(
        [behaviour_factors(settings, velocity.astype(np.float64)), nuisance], axis=-1
    ).astype(np.float32)  # (n, T, F)
    readout, bias, baseline = neuron_parameters(settings, streams.neurons)
    spikes = np.empty((n, settings.n_bins, settings.n_neurons), dtype=np.uint8)
    for start in range(0, n, _SPIKE_CHUNK):
        rates = synthetic_maze_rates(factors[start : start + _SPIKE_CHUNK], readout, bias, baseline)
        counts = streams.spikes.poisson(rates)  # (chunk, T, N), consumed in trial order
        spikes[start : start + _SPIKE_CHUNK] = np.minimum(counts, 255)
    return SyntheticMazeData(
        spikes=spikes,
        velocity=velocity,
        angle=angle,
        condition=condition.astype(np.int64),
        split=split_labels(n, settings.split_fractions, streams.split),
        factors=factors,
        readout=readout,
        bias=bias,
        baseline=baseline,
    )


class Reaches(NamedTuple):
    """Per-trial reach parameters, each (n_trials,) float64."""

    direction: np.ndarray  # φ_i, radians
    curvature: np.ndarray  # κ_{c_i}, radians
    distance: np.ndarray  # d_i, metres
    duration: np.ndarray  # D_i, seconds
    onset: np.ndarray  # o_i, seconds relative to the aligned onset


def reach_velocity(settings: SyntheticMazeSettings, reaches: Reaches) -> np.ndarray:
    """(n_trials, n_bins, 2) float64 hand velocity in m/s on the behaviour bins.

    Behaviour bin k is sampled at its start, t_k + L relative to the aligned movement onset.
    """
    start, _ = settings.window_seconds
    times = start + settings.lag_seconds + np.arange(settings.n_bins) * settings.bin_seconds
    tau = (times[None, :] - reaches.onset[:, None]) / reaches.duration[:, None]  # (n, T)
    moving = (tau >= 0.0) & (tau < 1.0)
    tau = np.where(moving, tau, 0.0)
    profile = 30 * tau**2 - 60 * tau**3 + 30 * tau**4  # minimum-jerk speed, ∫ over τ = 1
    speed = np.where(moving, profile * (reaches.distance / reaches.duration)[:, None], 0.0)
    # Heading turns with the path fraction s(τ); the hand is still after the reach (τ ≥ 1).
    path = 10 * tau**3 - 15 * tau**4 + 6 * tau**5  # (n, T)
    heading = reaches.direction[:, None] + reaches.curvature[:, None] * path  # (n, T)
    return np.stack([speed * np.cos(heading), speed * np.sin(heading)], axis=-1)  # (n, T, 2)


def behaviour_factors(settings: SyntheticMazeSettings, velocity: np.ndarray) -> np.ndarray:
    """(n, T, 2) lagged velocity in m/s -> (n, T, 5) float64 factors [u_x, u_y, |u|, rot₁, rot₂]."""
    from scipy.signal import lfilter

    u = velocity / settings.velocity_scale  # (n, T, 2)
    speed = np.linalg.norm(u, axis=-1)  # (n, T)
    rate = -1.0 / settings.rotation_decay_seconds + 2j * np.pi * settings.rotation_hz
    pole = np.exp(rate * settings.bin_seconds)
    # One-pole complex IIR with unit DC gain, started at rest (the hand is still before onset).
    rotation = lfilter([1.0 - pole], [1.0, -pole], speed.astype(np.complex128), axis=1)  # (n, T)
    rotation *= settings.rotation_gain
    return np.concatenate(
        [u, speed[..., None], rotation.real[..., None], rotation.imag[..., None]], axis=-1
    )


def nuisance_latents(settings: SyntheticMazeSettings, rng: np.random.Generator) -> np.ndarray:
    """(n, T, M) float64 stationary unit-variance OU latents, independent of behaviour."""
    from scipy.signal import lfilter

    n, length, m = settings.n_trials, settings.n_bins, settings.n_nuisance_latents
    draws = rng.standard_normal((n, length, m))  # [:, 0] is y(0), the rest the innovations ε
    a = math.exp(-settings.bin_seconds / settings.nuisance_seconds)
    start = draws[:, :1]  # (n, 1, M)
    later, _ = lfilter([math.sqrt(1 - a * a)], [1.0, -a], draws[:, 1:], axis=1, zi=a * start)
    return np.concatenate([start, later], axis=1)  # (n, T, M)


def neuron_parameters(
    settings: SyntheticMazeSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Readout W (N, F), bias b (N,) and resting counts m (N,), all float32."""
    n = settings.n_neurons
    tuning = unit_rows(rng, n, N_BEHAVIOUR_FACTORS)  # (N, 5)
    mixing = unit_rows(rng, n, settings.n_nuisance_latents)  # (N, M)
    readout = np.concatenate(
        [settings.tuning_gain * tuning, settings.nuisance_gain * mixing], axis=1
    )  # (N, F)
    bias = rng.normal(settings.bias_mean, settings.bias_std, n)  # (N,)
    low, high = np.log(settings.baseline_count_range)
    baseline = np.exp(rng.uniform(low, high, n))  # (N,)
    return readout.astype(np.float32), bias.astype(np.float32), baseline.astype(np.float32)


def synthetic_maze_rates(
    factors: np.ndarray, readout: np.ndarray, bias: np.ndarray, baseline: np.ndarray
) -> np.ndarray:
    """Poisson means λ = m·softplus(x·Wᵀ + b)/softplus(b): (n, T, F) -> (n, T, N) float32.

    Evaluated in float32 from the stored float32 arrays, so it reproduces the simulation exactly.
    """
    factors = np.asarray(factors, dtype=np.float32)
    bias = np.asarray(bias, dtype=np.float32)
    drive = factors @ np.asarray(readout, dtype=np.float32).T + bias  # (n, T, N)
    scale = np.asarray(baseline, dtype=np.float32) / np.logaddexp(np.float32(0), bias)  # (N,)
    return np.logaddexp(np.float32(0), drive) * scale  # (n, T, N)


def split_labels(
    n_trials: int, fractions: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """(n_trials,) labels from a seeded permutation: round(f·n) train and val, the rest test."""
    n_train = int(round(fractions[0] * n_trials))
    n_val = min(int(round(fractions[1] * n_trials)), n_trials - n_train)
    order = rng.permutation(n_trials)
    labels = np.full(n_trials, "test", dtype="<U5")
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_val]] = "val"
    return labels


def smooth_trials(spikes: np.ndarray, sigma_bins: float) -> np.ndarray:
    """Gaussian smoothing along time within each trial: (n, T, N) -> (n, T, N) float32."""
    from scipy.ndimage import gaussian_filter1d

    values = np.asarray(spikes, dtype=np.float32)
    if sigma_bins == 0:
        return values
    return gaussian_filter1d(values, sigma=float(sigma_bins), axis=1, mode="reflect")


def velocity_decoding_r2(
    spikes: np.ndarray,
    velocity: np.ndarray,
    split: np.ndarray,
    *,
    sigma_bins: float = REPORT_SMOOTHING_SIGMA_BINS,
    shift_bins: int = 0,
) -> tuple[float, float]:
    """(train R², held-out R²) of OLS from smoothed counts at bin k to velocity at bin k + shift.

    spikes (n, T, N), velocity (n, T, 2), split (n,) labels: fit on the "train" trials, score on
    "val" + "test" pooled; one row per (trial, bin) where both bins exist.
    """
    features = smooth_trials(spikes, sigma_bins)  # (n, T, N)
    length = spikes.shape[1]
    lo, hi = max(0, -shift_bins), min(length, length - shift_bins)
    x = features[:, lo:hi]  # (n, T', N)
    y = np.asarray(velocity, dtype=np.float64)[:, lo + shift_bins : hi + shift_bins]  # (n, T', 2)
    split = np.asarray(split)
    train, heldout = split == "train", np.isin(split, ("val", "test"))

    def flat(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return array[rows].reshape(-1, array.shape[-1]).astype(np.float64)  # (rows·T', C)

    x_train, y_train = flat(x, train), flat(y, train)
    x_mean, y_mean = x_train.mean(axis=0), y_train.mean(axis=0)
    centred = x_train - x_mean
    # OLS with intercept through the (N, N) normal equations: the same fit as `fit_ols`
    # (minimum-norm where silent neurons make it singular) at a fraction of an SVD's cost.
    weights, *_ = np.linalg.lstsq(centred.T @ centred, centred.T @ (y_train - y_mean), rcond=None)

    def predict(features: np.ndarray) -> np.ndarray:
        return (features - x_mean) @ weights + y_mean  # (rows, 2)

    return (
        r2_score(y_train, predict(x_train)),
        r2_score(flat(y, heldout), predict(flat(x, heldout))),
    )


def synthetic_maze_report(data: SyntheticMazeData) -> dict[str, Any]:
    """Summary numbers of a simulated dataset: counts, speeds and velocity decodability."""
    train_r2, heldout_r2 = velocity_decoding_r2(data.spikes, data.velocity, data.split)
    speed = np.linalg.norm(data.velocity, axis=-1)
    return {
        "n_trials": int(data.spikes.shape[0]),
        "mean_count_per_bin": float(data.spikes.mean()),
        "max_count": int(data.spikes.max()),
        "max_speed": float(speed.max()),
        "velocity_r2_train": train_r2,
        "velocity_r2_heldout": heldout_r2,
    }
