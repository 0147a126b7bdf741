"""Spike-train statistics and the model-vs-data metrics of LDNS §11.

Every spike array is `(trials, T, N)` of non-negative integer counts. `bin_seconds` is the bin
width Δ = 1/fps: 0.005 for the monkey data (statistics in seconds), 1.0 for Lorenz (statistics
in bins).

The expensive part of every metric is one pass over the spikes; it is done once per array by
`trial_statistics`, which keeps per-trial sufficient statistics (population counts, spike counts,
ISI count/sum/sum of squares per trial and neuron). Any resample of trials (the bootstrap and the
noise floor of §11.2) is then pooled from those without touching the spikes again, except for the
correlation matrix, whose Gram matrix is recomputed over the resampled trials.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from neuralcli.errors import ConfigError, DataError

# Work on about this many spike-array elements at a time: bounds the float64 copies.
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- inputs


def _as_spikes(spikes: np.ndarray, name: str = "spikes") -> np.ndarray:
    array = np.asarray(spikes)
    if array.ndim != 3 or 0 in array.shape:
        raise DataError(
            f"{name} must be a non-empty (trials, T, N) array of spike counts, got shape "
            f"{array.shape}; reshape it to trials x time bins x neurons"
        )
    return array


def _check_bin_seconds(bin_seconds: float) -> float:
    if not (math.isfinite(bin_seconds) and bin_seconds > 0):
        raise ConfigError(
            f"bin_seconds must be a positive number, got {bin_seconds!r}; use 1.0 for "
            "statistics in bins or the bin width in seconds (e.g. 0.005)"
        )
    return float(bin_seconds)


def _check_counts(values: np.ndarray) -> None:
    """`values`: the non-zero entries of a spike array, as float64."""
    bad = ~np.isfinite(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        raise DataError(
            f"spike arrays must hold non-negative integer counts, found {values[bad][0]!r}; "
            "draw Poisson counts from rates before computing spike statistics"
        )


def _trial_chunks(n_trials: int, elements_per_trial: int) -> list[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(1, elements_per_trial))
    return [slice(start, min(start + step, n_trials)) for start in range(0, n_trials, step)]


# --------------------------------------------------------------------------- elementary metrics


def nan_rmse(a: np.ndarray, b: np.ndarray) -> float:
    """sqrt(nanmean((a - b)²)) over all entries; NaN if no entry is finite in both (LDNS §11.1)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    finite = np.isfinite(diff)
    if not finite.any():
        return float("nan")
    return float(np.sqrt(np.mean(diff[finite] ** 2)))


def nan_pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r over the entries finite in both arrays (LDNS §11.3, Lorenz figure).

    NaN when fewer than two such entries remain or either side is constant on them.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return float("nan")
    a = a[keep] - a[keep].mean()
    b = b[keep] - b[keep].mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if denominator == 0.0:
        return float("nan")
    return float(a @ b) / denominator


# --------------------------------------------------------------------------- population count


def population_counts(spikes: np.ndarray) -> np.ndarray:
    """Population spike count p(trial, t) = Σ_n s_n(t), pooled over trials and bins (LDNS §11.1).

    spikes: (trials, T, N) -> (trials·T,)
    """
    spikes = _as_spikes(spikes)
    return spikes.sum(axis=2).ravel()


def population_count_density(counts: np.ndarray, max_count: int) -> np.ndarray:
    """Gaussian KDE of `counts` on the grid 0..max_count, normalised to sum 1 (LDNS §11.1).

    Identical to scipy `gaussian_kde(counts)` with Scott's bandwidth evaluated on the grid: the
    kernel sum is taken over the distinct count values weighted by how often each occurs, which
    makes it cost O(grid x distinct values) instead of O(grid x samples). Zero sample variance
    (a constant count) has no KDE; its limit, a point mass at that count, is returned.

    counts: (n,) -> (max_count + 1,)
    """
    counts = np.asarray(counts).ravel()
    if counts.size == 0:
        raise DataError("population counts are empty; pass spikes with at least one bin")
    if max_count < 0:
        raise ConfigError(f"max_count must be >= 0, got {max_count}")
    grid = np.arange(int(max_count) + 1, dtype=np.float64)
    values, multiplicity = np.unique(np.asarray(counts, dtype=np.float64), return_counts=True)
    n = int(multiplicity.sum())
    mean = float(multiplicity @ values) / n
    variance = float(multiplicity @ (values - mean) ** 2) / (n - 1) if n > 1 else 0.0
    if variance <= 0.0:
        density = np.zeros_like(grid)
        density[int(np.argmin(np.abs(grid - mean)))] = 1.0
        return density
    bandwidth = math.sqrt(variance) * n ** (-1.0 / 5.0)  # Scott's factor n^(-1/(d+4)), d = 1
    density = np.zeros_like(grid)
    for start in range(0, values.size, 4096):
        z = (grid[:, None] - values[None, start : start + 4096]) / bandwidth  # (M+1, V)
        density += np.exp(-0.5 * z * z) @ multiplicity[start : start + 4096]
    # The kernel's 1/(n·h·sqrt(2π)) is a constant factor: normalising to sum 1 removes it.
    return density / density.sum()


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """D_KL(p ‖ q) = Σ p·log(p/q), NaN terms (0·log 0/0) ignored (LDNS §11.1)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = p * np.log(p / q)
    return float(np.nansum(terms))


def _max_count(*counts: np.ndarray) -> int:
    return int(math.ceil(max(float(np.max(c)) for c in counts)))


def population_count_kl(
    model: np.ndarray, data: np.ndarray, *, max_count: int | None = None
) -> float:
    """D_KL(model ‖ data) between population-spike-count densities (LDNS §11.1).

    Both population counts get a Gaussian KDE (Scott bandwidth) evaluated on the integer grid
    0..M, each normalised to sum 1. M is `max_count`, by default the largest population count in
    either array; pass the maximum over every compared method to reproduce a Table-1 row.

    model: (trials_m, T, N), data: (trials_d, T', N) -> scalar
    """
    model_counts = population_counts(_as_spikes(model, "model"))
    data_counts = population_counts(_as_spikes(data, "data"))
    if max_count is None:
        max_count = _max_count(model_counts, data_counts)
    p = population_count_density(model_counts, max_count)
    q = population_count_density(data_counts, max_count)
    return _kl_divergence(p, q)


# --------------------------------------------------------------------------- correlations


def _gram(spikes: np.ndarray, trials: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Uncentred second moments of the spikes concatenated over `trials` and time.

    Each block of rows gets a column of ones appended, so one product X̃ᵀX̃ yields G = XᵀX, the
    column sums s and the row count. Integer counts make every partial sum an integer: float32
    holds them exactly while they stay below 2²⁴ (checked per block), otherwise the block runs
    in float64. G - s·sᵀ/n then loses nothing to cancellation. The product runs in torch: on CPU
    its matmul is several times faster than numpy's here.

    spikes: (trials, T, N) -> G (N, N), s (N,), number of rows
    """
    n_trials, n_bins, n_neurons = spikes.shape
    order = None if trials is None else np.asarray(trials)
    n_selected = n_trials if order is None else order.size
    integer_source = spikes.dtype.kind in "biu"
    moments = np.zeros((n_neurons + 1, n_neurons + 1))
    for chunk in _trial_chunks(n_selected, n_bins * n_neurons):
        block = spikes[chunk] if order is None else spikes[order[chunk]]
        rows = block.reshape(-1, n_neurons)  # (R, N)
        largest = float(rows.max()) if rows.size else 0.0
        exact_in_float32 = rows.shape[0] * max(largest, 1.0) ** 2 < 2**24 and (
            integer_source or bool(np.array_equal(rows, np.rint(rows)))
        )
        dtype = np.float32 if exact_in_float32 else np.float64
        augmented = np.empty((rows.shape[0], n_neurons + 1), dtype=dtype)  # (R, N + 1)
        augmented[:, :n_neurons] = rows
        augmented[:, n_neurons] = 1.0
        product = torch.from_numpy(augmented)
        moments += (product.T @ product).numpy()  # (N + 1, N + 1)
    return moments[:n_neurons, :n_neurons], moments[n_neurons, :n_neurons], n_selected * n_bins


def _correlation_from_moments(gram: np.ndarray, total: np.ndarray, n_rows: int) -> np.ndarray:
    """Pearson matrix from second moments, strict lower triangle kept (LDNS §11.1).

    (N, N), (N,) -> (N, N)
    """
    scatter = gram - np.outer(total, total) / n_rows  # (N, N), n_rows x covariance
    variance = np.diag(scatter).copy()
    # A silent or constant neuron has no correlation (np.corrcoef gives NaN there too); the
    # tolerance absorbs rounding of G_ii - s_i²/n for constant non-zero counts.
    silent = variance <= 1e-12 * np.maximum(np.diag(gram), 1.0)
    scale = np.sqrt(np.where(silent, np.nan, variance))
    correlation = scatter / np.outer(scale, scale)
    return np.tril(correlation, k=-1)


def correlation_matrix(spikes: np.ndarray) -> np.ndarray:
    """Pairwise Pearson correlation of neurons over all trials and bins (LDNS §11.1).

    The spikes are concatenated over trials and time; the diagonal and the upper triangle are set
    to 0 and only the strict lower triangle is kept. Entries that involve a silent neuron are NaN.

    spikes: (trials, T, N) -> (N, N)
    """
    spikes = _as_spikes(spikes)
    return _correlation_from_moments(*_gram(spikes, None))


def correlation_rmse(model: np.ndarray, data: np.ndarray) -> float:
    """RMSE between correlation matrices over all N² entries (LDNS §11.1).

    The zeroed diagonal and upper triangle count as entries, so they dilute the error exactly as
    in the reference evaluation; NaN entries (silent neurons) are ignored.

    model: (trials_m, T, N), data: (trials_d, T', N) -> scalar
    """
    model_matrix = correlation_matrix(_as_spikes(model, "model"))
    data_matrix = correlation_matrix(_as_spikes(data, "data"))
    _check_same_neurons(model_matrix.shape[0], data_matrix.shape[0])
    return nan_rmse(model_matrix, data_matrix)


# --------------------------------------------------------------------------- ISIs and rates


def spike_times_from_counts(counts: np.ndarray, bin_seconds: float) -> np.ndarray:
    """Spike times of one binned train (LDNS §11.1).

    A bin [tΔ, (t+1)Δ) with count c gets its c spikes at the interior points of
    linspace(tΔ, (t+1)Δ, c + 2), i.e. at tΔ + kΔ/(c+1) for k = 1..c.

    counts: (T,) -> (Σ counts,) sorted times in seconds (in bins when bin_seconds is 1)
    """
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise DataError(f"spike_times_from_counts takes one train (T,), got shape {counts.shape}")
    bin_seconds = _check_bin_seconds(bin_seconds)
    _check_counts(counts[counts != 0].astype(np.float64))
    counts = counts.astype(np.int64)
    bins = np.repeat(np.arange(counts.size), counts)  # (S,)
    per_spike_count = counts[bins]
    # k = 1..c within each bin: position in the flat list minus the bin's first position.
    first_index = np.cumsum(counts) - counts
    k = np.arange(bins.size) - first_index[bins] + 1
    return (bins + k / (per_spike_count + 1.0)) * bin_seconds


def _isi_sums(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (trial, neuron) spike count and ISI count, sum and sum of squares, in bins.

    Only occupied bins are visited: the trains are laid out trial-by-neuron-by-time, so the
    non-zero bins of one train are consecutive and sorted in time. Within a bin with count c the
    c - 1 ISIs all equal 1/(c+1); between consecutive occupied bins the ISI runs from the last
    spike of one (t₁ + c₁/(c₁+1)) to the first of the next (t₂ + 1/(c₂+1)) (LDNS §11.1).

    chunk: (B, T, N) -> four (B, N) float64 arrays
    """
    n_trials, n_bins, n_neurons = chunk.shape
    n_trains = n_trials * n_neurons
    trains = np.ascontiguousarray(chunk.transpose(0, 2, 1)).reshape(-1)  # (B·N·T,)
    position = np.flatnonzero(trains)  # (K,) occupied bins
    counts = trains[position].astype(np.float64)  # (K,)
    _check_counts(counts)
    train = position // n_bins  # (K,)
    t = (position - train * n_bins).astype(np.float64)
    inverse = 1.0 / (counts + 1.0)
    first = t + inverse  # (K,) first spike of each occupied bin
    last = t + counts * inverse  # (K,) last spike

    spike_count = np.bincount(train, weights=counts, minlength=n_trains)
    isi_count = np.maximum(spike_count - 1.0, 0.0)
    isi_sum_sq = np.bincount(train, weights=(counts - 1.0) * inverse * inverse, minlength=n_trains)
    isi_sum = np.zeros(n_trains)
    if position.size:
        same_train = train[1:] == train[:-1]  # (K-1,)
        gaps = (first[1:] - last[:-1])[same_train]
        isi_sum_sq += np.bincount(train[1:][same_train], weights=gaps * gaps, minlength=n_trains)
        # A train's ISIs telescope: their sum is its last spike minus its first.
        starts = np.flatnonzero(np.concatenate(([True], ~same_train)))
        ends = np.concatenate((starts[1:] - 1, [position.size - 1]))
        isi_sum[train[starts]] = last[ends] - first[starts]
    shape = (n_trials, n_neurons)
    return (
        spike_count.reshape(shape),
        isi_count.reshape(shape),
        isi_sum.reshape(shape),
        isi_sum_sq.reshape(shape),
    )


def _pooled_isi(
    isi_count: np.ndarray, isi_sum: np.ndarray, isi_sum_sq: np.ndarray, bin_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron mean and std (ddof 0) of ISIs pooled over trials; NaN if none (LDNS §11.1).

    (trials, N) x 3 -> (N,), (N,) in seconds
    """
    n = isi_count.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = isi_sum.sum(axis=0) / n
        variance = np.maximum(isi_sum_sq.sum(axis=0) / n - mean * mean, 0.0)
    none = n == 0
    mean = np.where(none, np.nan, mean) * bin_seconds
    std = np.where(none, np.nan, np.sqrt(variance)) * bin_seconds
    return mean, std


def isi_statistics(spikes: np.ndarray, bin_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron mean and std of inter-spike intervals (LDNS §11.1).

    Counts become spike times by the even-interior-points rule of `spike_times_from_counts`;
    ISIs are the differences within each (trial, neuron) train, pooled per neuron over trials.
    Std is the population std (ddof 0). A neuron without any ISI gets NaN.

    spikes: (trials, T, N) -> mean_isi (N,), std_isi (N,) in seconds (in bins when bin_seconds=1)
    """
    stats = trial_statistics(spikes, bin_seconds=bin_seconds)
    return _pooled_isi(stats.isi_count, stats.isi_sum, stats.isi_sum_sq, stats.bin_seconds)


def mean_rates(spikes: np.ndarray, bin_seconds: float) -> np.ndarray:
    """Per-neuron mean firing rate over trials and bins (LDNS §11.1 utility).

    spikes: (trials, T, N) -> (N,) spikes per second (spikes per bin when bin_seconds is 1)
    """
    spikes = _as_spikes(spikes)
    bin_seconds = _check_bin_seconds(bin_seconds)
    return spikes.mean(axis=(0, 1), dtype=np.float64) / bin_seconds


# --------------------------------------------------------------------------- statistics objects


@dataclass(frozen=True, eq=False)
class SpikeStatistics:
    """Everything the §11.1 metrics need from one spike array.

    population_counts: (trials·T,); correlation: (N, N) strict lower triangle; mean_isi, std_isi,
    mean_rate: (N,) in seconds / spikes per second (bins / spikes per bin when bin_seconds is 1).
    """

    population_counts: np.ndarray
    correlation: np.ndarray
    mean_isi: np.ndarray
    std_isi: np.ndarray
    mean_rate: np.ndarray
    n_trials: int


@dataclass(frozen=True, eq=False)
class TrialStatistics:
    """Per-trial sufficient statistics of a spike array; pool any subset with `pooled`.

    Computed once per array (one pass), so the bootstrap and the noise floor of §11.2 resample
    trials without recomputing ISIs. `spikes` is kept for the correlation Gram matrix.

    spikes: (trials, T, N); population_counts: (trials, T); spike_count, isi_count, isi_sum,
    isi_sum_sq: (trials, N), ISI sums in bins and bins².
    """

    spikes: np.ndarray
    bin_seconds: float
    population_counts: np.ndarray
    spike_count: np.ndarray
    isi_count: np.ndarray
    isi_sum: np.ndarray
    isi_sum_sq: np.ndarray

    @property
    def n_trials(self) -> int:
        return self.spikes.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.spikes.shape[2]

    def pooled(self, trials: np.ndarray | None = None) -> SpikeStatistics:
        """Statistics of `spikes[trials]` (all trials when None); trials may repeat (bootstrap).

        trials: (k,) integer indices -> SpikeStatistics over k trials
        """
        index = slice(None) if trials is None else np.asarray(trials)
        n_trials = self.n_trials if trials is None else int(index.size)
        if n_trials == 0:
            raise DataError("cannot compute spike statistics of zero trials; pass some trials")
        n_bins = self.spikes.shape[1]
        mean_isi, std_isi = _pooled_isi(
            self.isi_count[index], self.isi_sum[index], self.isi_sum_sq[index], self.bin_seconds
        )
        mean_rate = self.spike_count[index].sum(axis=0) / (n_trials * n_bins) / self.bin_seconds
        correlation = _correlation_from_moments(*_gram(self.spikes, trials))
        return SpikeStatistics(
            population_counts=self.population_counts[index].ravel(),
            correlation=correlation,
            mean_isi=mean_isi,
            std_isi=std_isi,
            mean_rate=mean_rate,
            n_trials=n_trials,
        )


def trial_statistics(spikes: np.ndarray, *, bin_seconds: float = 1.0) -> TrialStatistics:
    """One pass over `spikes` collecting the per-trial statistics behind every §11.1 metric.

    spikes: (trials, T, N) non-negative integer counts -> TrialStatistics
    """
    spikes = _as_spikes(spikes)
    bin_seconds = _check_bin_seconds(bin_seconds)
    n_trials, n_bins, n_neurons = spikes.shape
    parts = [_isi_sums(spikes[chunk]) for chunk in _trial_chunks(n_trials, n_bins * n_neurons)]
    spike_count, isi_count, isi_sum, isi_sum_sq = (
        np.concatenate(p) for p in zip(*parts, strict=True)
    )
    return TrialStatistics(
        spikes=spikes,
        bin_seconds=bin_seconds,
        population_counts=spikes.sum(axis=2),
        spike_count=spike_count,
        isi_count=isi_count,
        isi_sum=isi_sum,
        isi_sum_sq=isi_sum_sq,
    )


def spike_statistics(spikes: np.ndarray, *, bin_seconds: float = 1.0) -> SpikeStatistics:
    """All §11.1 statistics of one spike array.

    spikes: (trials, T, N) -> SpikeStatistics
    """
    return trial_statistics(spikes, bin_seconds=bin_seconds).pooled()


def _ensure_trial_statistics(
    spikes: np.ndarray | TrialStatistics, bin_seconds: float, name: str
) -> TrialStatistics:
    if isinstance(spikes, TrialStatistics):
        if spikes.bin_seconds != _check_bin_seconds(bin_seconds):
            raise DataError(
                f"{name} statistics were computed with bin_seconds={spikes.bin_seconds}, not "
                f"{bin_seconds}; recompute them with trial_statistics(..., "
                f"bin_seconds={bin_seconds})"
            )
        return spikes
    return trial_statistics(_as_spikes(spikes, name), bin_seconds=bin_seconds)


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class SpikeComparison:
    """Model-vs-data metrics (LDNS §11.1 for the errors, §11.3 for the Pearson r).

    Errors: D_KL of population-count densities, RMSE of correlation matrices (all N² entries),
    RMSE of per-neuron mean ISI, std ISI and mean rate. Pearson r: per-neuron mean ISI and std
    ISI, correlation-matrix entries (zeroed upper triangle included), and the two normalised
    population-count densities on the shared grid. n_model, n_data: trials on each side.
    """

    kl_population_count: float
    rmse_correlation: float
    rmse_mean_isi: float
    rmse_std_isi: float
    mean_rate_error: float
    pearson_mean_isi: float
    pearson_std_isi: float
    pearson_correlation: float
    pearson_population_count: float
    n_model: int
    n_data: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


METRIC_NAMES: tuple[str, ...] = tuple(
    f.name for f in fields(SpikeComparison) if f.name not in ("n_model", "n_data")
)


def _check_same_neurons(n_model: int, n_data: int) -> None:
    if n_model != n_data:
        raise DataError(
            f"model has {n_model} neurons but data has {n_data}; compare spikes of the same "
            "neurons (the last axis of (trials, T, N))"
        )


def compare_statistics(
    model: SpikeStatistics,
    data: SpikeStatistics,
    *,
    max_count: int | None = None,
    isi_reference: SpikeStatistics | None = None,
) -> SpikeComparison:
    """Metrics between two precomputed statistics (LDNS §11.1, §11.3).

    max_count: top of the population-count grid; default the largest count on either side.
    isi_reference: take the data-side ISI statistics from here instead of `data`; only the
    §11.2 noise-floor row uses this.
    """
    _check_same_neurons(model.mean_rate.size, data.mean_rate.size)
    if max_count is None:
        max_count = _max_count(model.population_counts, data.population_counts)
    p = population_count_density(model.population_counts, max_count)
    q = population_count_density(data.population_counts, max_count)
    isi_data = data if isi_reference is None else isi_reference
    return SpikeComparison(
        kl_population_count=_kl_divergence(p, q),
        rmse_correlation=nan_rmse(model.correlation, data.correlation),
        rmse_mean_isi=nan_rmse(model.mean_isi, isi_data.mean_isi),
        rmse_std_isi=nan_rmse(model.std_isi, isi_data.std_isi),
        mean_rate_error=nan_rmse(model.mean_rate, data.mean_rate),
        pearson_mean_isi=nan_pearson(model.mean_isi, isi_data.mean_isi),
        pearson_std_isi=nan_pearson(model.std_isi, isi_data.std_isi),
        pearson_correlation=nan_pearson(model.correlation, data.correlation),
        pearson_population_count=nan_pearson(p, q),
        n_model=model.n_trials,
        n_data=data.n_trials,
    )


def compare_spikes(
    model: np.ndarray | TrialStatistics,
    data: np.ndarray | TrialStatistics,
    *,
    bin_seconds: float = 1.0,
    seed: int = 42,
) -> SpikeComparison:
    """All §11.1 / §11.3 metrics of model samples against real data.

    Either side may be a `TrialStatistics` (from `trial_statistics`) so that several comparisons
    against the same data (model, baseline, noise floor) pass over the data only once.
    `seed` is not used: every metric here is deterministic. It is accepted so that
    compare_spikes, noise_floor and bootstrap_compare take the same keywords.

    model: (trials_m, T, N), data: (trials_d, T', N) -> SpikeComparison
    """
    model_stats = _ensure_trial_statistics(model, bin_seconds, "model")
    data_stats = _ensure_trial_statistics(data, bin_seconds, "data")
    _check_same_neurons(model_stats.n_neurons, data_stats.n_neurons)
    return compare_statistics(model_stats.pooled(), data_stats.pooled())


def _split_halves(n_trials: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n_trials)
    return order[: n_trials // 2], order[n_trials // 2 :]


def noise_floor(
    data: np.ndarray | TrialStatistics, *, bin_seconds: float = 1.0, seed: int = 42
) -> SpikeComparison:
    """Data vs data: a random half of the trials (as "model") against the other half.

    The value a perfect generative model would reach with this many trials (LDNS §11.2 noise
    floor, without the bootstrap). Needs at least two trials.

    data: (trials, T, N) or its TrialStatistics -> SpikeComparison
    """
    stats = _ensure_trial_statistics(data, bin_seconds, "data")
    if stats.n_trials < 2:
        raise DataError("the noise floor splits the trials in two halves; pass at least 2 trials")
    first, second = _split_halves(stats.n_trials, np.random.default_rng(seed))
    return compare_statistics(stats.pooled(first), stats.pooled(second))


# --------------------------------------------------------------------------- Table-1 protocol


@dataclass(frozen=True)
class BootstrapComparison:
    """Mean and std (ddof 0) over bootstrap resamples of each metric (LDNS §11.2).

    model_*: the model's resamples against the full reference. floor_*: the data-vs-data row.
    Metric names are METRIC_NAMES; runs hold each resample's SpikeComparison.
    """

    model_mean: dict[str, float]
    model_std: dict[str, float]
    floor_mean: dict[str, float]
    floor_std: dict[str, float]
    model_runs: tuple[SpikeComparison, ...]
    floor_runs: tuple[SpikeComparison, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "model_mean": dict(self.model_mean),
            "model_std": dict(self.model_std),
            "floor_mean": dict(self.floor_mean),
            "floor_std": dict(self.floor_std),
            "model_runs": [run.to_dict() for run in self.model_runs],
            "floor_runs": [run.to_dict() for run in self.floor_runs],
        }


def _summarise(runs: list[SpikeComparison]) -> tuple[dict[str, float], dict[str, float]]:
    table = {name: np.array([getattr(run, name) for run in runs]) for name in METRIC_NAMES}
    return (
        {name: float(np.mean(values)) for name, values in table.items()},
        {name: float(np.std(values)) for name, values in table.items()},
    )


def bootstrap_compare(
    model: np.ndarray | TrialStatistics,
    data: np.ndarray | TrialStatistics,
    *,
    n_bootstrap: int = 5,
    seed: int = 42,
    bin_seconds: float,
    max_count: int | None = None,
) -> BootstrapComparison:
    """The monkey Table-1 protocol (LDNS §11.2): bootstrap metrics and the data-vs-data row.

    With a generator seeded by `seed`, draw `n_bootstrap` index sets of the model's size with
    replacement (the same sets for every method compared with the same seed and sample count).
    Each model resample is compared with the full reference `data`. For the noise floor, each
    bootstrap set also resamples the reference, and a random half of the reference (without
    replacement) is compared with the complementary half of that bootstrapped reference; the
    bootstrapped half plays the model. As in the reference evaluation, the floor's ISI metrics
    (RMSE and Pearson r of mean and std ISI) compare that half with the **full** reference's ISI
    statistics, not with the other half: a quirk kept for parity with the published floor.

    Pass `TrialStatistics` (from `trial_statistics`) instead of arrays to reuse the one pass over
    the reference across several methods. max_count: top of the population-count grid, default
    the largest count in model or data; pass the maximum over all methods for Table 1.

    model: (trials_m, T, N), data: (trials_d, T', N) -> BootstrapComparison
    """
    if n_bootstrap < 1:
        raise ConfigError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    model_stats = _ensure_trial_statistics(model, bin_seconds, "model")
    data_stats = _ensure_trial_statistics(data, bin_seconds, "data")
    _check_same_neurons(model_stats.n_neurons, data_stats.n_neurons)
    if data_stats.n_trials < 2:
        raise DataError("the noise floor splits the reference in two halves; pass >= 2 trials")
    if max_count is None:
        max_count = _max_count(model_stats.population_counts, data_stats.population_counts)

    rng = np.random.default_rng(seed)
    n_model, n_data = model_stats.n_trials, data_stats.n_trials
    model_sets = [rng.integers(0, n_model, size=n_model) for _ in range(n_bootstrap)]
    data_sets = (
        model_sets
        if n_data == n_model
        else [rng.integers(0, n_data, size=n_data) for _ in range(n_bootstrap)]
    )
    halves = [_split_halves(n_data, rng) for _ in range(n_bootstrap)]

    reference = data_stats.pooled()
    model_runs = [
        compare_statistics(model_stats.pooled(trials), reference, max_count=max_count)
        for trials in model_sets
    ]
    floor_runs = []
    for bootstrap_set, (reference_half, complement) in zip(data_sets, halves, strict=True):
        floor_runs.append(
            compare_statistics(
                data_stats.pooled(bootstrap_set[complement]),
                data_stats.pooled(reference_half),
                max_count=max_count,
                isi_reference=reference,
            )
        )
    model_mean, model_std = _summarise(model_runs)
    floor_mean, floor_std = _summarise(floor_runs)
    return BootstrapComparison(
        model_mean=model_mean,
        model_std=model_std,
        floor_mean=floor_mean,
        floor_std=floor_std,
        model_runs=tuple(model_runs),
        floor_runs=tuple(floor_runs),
    )
