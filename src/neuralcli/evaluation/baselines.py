"""Reference samplers that a generative model of spikes has to beat."""

from __future__ import annotations

import numpy as np

from neuralcli.errors import ConfigError, DataError

# Draw about this many (trial, bin, neuron) counts at a time: bounds the int64 bincount buffer.
_CHUNK_ELEMENTS = 1 << 22


def independent_poisson(data: np.ndarray, *, n_trials: int, seed: int = 42) -> np.ndarray:
    """Homogeneous independent Poisson spikes matched to each neuron's mean rate.

    Neuron n fires Poisson(λ_n) counts in every bin, λ_n being its mean count per bin over all
    trials and bins of `data`. Neurons, bins and trials are independent, so the baseline gets
    mean rates right and has no pairwise correlations and no temporal structure: the floor that
    the correlation and ISI metrics of LDNS §11.1 should show a model to improve on.

    data: (trials, T, N) counts -> (n_trials, T, N) int32 counts
    """
    data = np.asarray(data)
    if data.ndim != 3 or 0 in data.shape:
        raise DataError(
            f"data must be a non-empty (trials, T, N) array of spike counts, got shape {data.shape}"
        )
    if n_trials < 1:
        raise ConfigError(f"n_trials must be at least 1, got {n_trials}")
    rates = data.mean(axis=(0, 1), dtype=np.float64)  # (N,) counts per bin
    if not np.all(np.isfinite(rates)) or np.any(rates < 0):
        raise DataError("data must hold finite non-negative spike counts")
    rng = np.random.default_rng(seed)
    n_bins, n_neurons = data.shape[1], data.shape[2]
    spikes = np.empty((n_trials, n_bins, n_neurons), dtype=np.int32)
    step = max(1, _CHUNK_ELEMENTS // (n_bins * n_neurons))
    for start in range(0, n_trials, step):
        stop = min(start + step, n_trials)
        n_cells = (stop - start) * n_bins  # bins of this chunk, per neuron
        # Given its total, a homogeneous Poisson process puts each spike in a uniformly random
        # bin: drawing totals, then positions, is exact and costs O(spikes) instead of O(bins).
        totals = rng.poisson(rates * n_cells)  # (N,)
        neuron = np.repeat(np.arange(n_neurons), totals)  # (K,)
        cell = rng.integers(0, n_cells, size=neuron.size)  # (K,)
        counts = np.bincount(cell * n_neurons + neuron, minlength=n_cells * n_neurons)
        spikes[start:stop] = counts.reshape(stop - start, n_bins, n_neurons)
    return spikes
