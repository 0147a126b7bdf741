"""The monkey Table-1 protocol of LDNS §11.2, for several methods at once.

After seeding, `n_bootstraps` index sets (trials drawn with replacement) are drawn once and
shared by every method; each method's resample is compared with the **full** reference (the
training spikes in LDNS) by the four Table-1 metrics of §11.1, and each metric is reported
as mean ± std over the resamples. The "data vs data" noise-floor row compares, for each
bootstrap set, a random half of the reference (without replacement) with the complementary
half of the bootstrapped reference.

Quirk kept for parity (LDNS §11.2, pitfall 11): in the reference evaluation the floor's ISI
metrics compare the bootstrapped half with the **full** reference's precomputed ISI
statistics, not with the other half. `isi_quirk=False` compares it with the other half.

The metrics come from `spike_stats`: every array is passed over once (`trial_statistics`) and
resamples are pooled from per-trial statistics. The population-count grid 0..M uses the
largest population count over the reference and every method (LDNS §11.1, "monkey: all
methods incl. data"). std is the population std (ddof 0) over the resamples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neuralcli.errors import ConfigError, DataError
from neuralcli.evaluation.spike_stats import (
    METRIC_NAMES,
    SpikeComparison,
    TrialStatistics,
    compare_statistics,
    trial_statistics,
)

DATA_VS_DATA = "data vs data"

# The four Table-1 columns: SpikeComparison field -> display label (LDNS §13.1).
TABLE1_METRICS: dict[str, str] = {
    "kl_population_count": "D_KL psc",
    "rmse_correlation": "RMSE corr",
    "rmse_mean_isi": "RMSE mean ISI",
    "rmse_std_isi": "RMSE std ISI",
}

# LDNS §13.1: published monkey Table 1, (mean, std) over 5 bootstraps; ISI errors in seconds.
PUBLISHED_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "pi-VAE": {
        "kl_population_count": (6.30e-3, 0.29e-3),
        "rmse_correlation": (3.08e-3, 0.01e-3),
        "rmse_mean_isi": (0.0641, 0.0022),
        "rmse_std_isi": (0.0348, 0.0008),
    },
    "TNDM": {
        "kl_population_count": (2.82e-3, 0.06e-3),
        "rmse_correlation": (2.72e-3, 0.01e-3),
        "rmse_mean_isi": (0.0569, 0.0045),
        "rmse_std_isi": (0.0292, 0.0009),
    },
    "AutoLFADS": {
        "kl_population_count": (4.05e-3, 0.22e-3),
        "rmse_correlation": (2.64e-3, 0.01e-3),
        "rmse_mean_isi": (0.0386, 0.0030),
        "rmse_std_isi": (0.0286, 0.0013),
    },
    "LDNS": {
        "kl_population_count": (3.79e-3, 0.44e-3),
        "rmse_correlation": (2.51e-3, 0.01e-3),
        "rmse_mean_isi": (0.0367, 0.0013),
        "rmse_std_isi": (0.0226, 0.0011),
    },
    "AutoLFADS + spike history": {
        "kl_population_count": (3.61e-3, 0.21e-3),
        "rmse_correlation": (2.64e-3, 0.02e-3),
        "rmse_mean_isi": (0.0342, 0.0016),
        "rmse_std_isi": (0.0234, 0.0001),
    },
    "LDNS + spike history": {
        "kl_population_count": (1.63e-3, 0.62e-3),
        "rmse_correlation": (2.50e-3, 0.01e-3),
        "rmse_mean_isi": (0.0245, 0.0021),
        "rmse_std_isi": (0.0235, 0.0012),
    },
    DATA_VS_DATA: {
        "kl_population_count": (1.4e-4, 0.6e-4),
        "rmse_correlation": (2.34e-3, 0.05e-3),
        "rmse_mean_isi": (0.0128, 0.0028),
        "rmse_std_isi": (0.0136, 0.0015),
    },
}


@dataclass(frozen=True)
class BootstrapDraws:
    """The random choices of one Table-1 evaluation.

    index_sets: n_bootstraps arrays (n_reference,) of trial indices drawn with replacement,
    shared by every method with n_reference trials and by the noise floor. halves: per
    bootstrap set, (reference_half, complement) positions, a split of 0..n_reference−1.
    extra_sets: index sets for methods whose trial count differs from the reference's, keyed
    by that count (empty in the LDNS protocol, where every method supplies as many trials).
    """

    index_sets: tuple[np.ndarray, ...]
    halves: tuple[tuple[np.ndarray, np.ndarray], ...]
    extra_sets: dict[int, tuple[np.ndarray, ...]]

    def sets_for(self, n_trials: int, n_reference: int) -> tuple[np.ndarray, ...]:
        return self.index_sets if n_trials == n_reference else self.extra_sets[n_trials]


def draw_bootstraps(
    n_reference: int,
    *,
    n_bootstraps: int = 5,
    seed: int = 42,
    other_sizes: Sequence[int] = (),
) -> BootstrapDraws:
    """Draw the shared index sets, then the noise-floor halves (LDNS §11.2).

    One generator seeded with `seed` draws, in this order: `n_bootstraps` index sets of size
    n_reference, the halves (a permutation per set, first n_reference // 2 positions are the
    reference half), then index sets for each size in `other_sizes` not equal to n_reference
    (in order of first appearance). The order matches `spike_stats.bootstrap_compare` when
    the model has as many trials as the reference, so both give the same numbers.
    """
    if isinstance(n_bootstraps, bool) or n_bootstraps < 1:
        raise ConfigError(f"n_bootstraps must be at least 1, got {n_bootstraps}")
    if n_reference < 2:
        raise DataError("the noise floor splits the reference in two halves; pass >= 2 trials")
    rng = np.random.default_rng(seed)
    index_sets = tuple(rng.integers(0, n_reference, size=n_reference) for _ in range(n_bootstraps))
    halves = []
    for _ in range(n_bootstraps):
        order = rng.permutation(n_reference)
        halves.append((order[: n_reference // 2], order[n_reference // 2 :]))
    extra_sets: dict[int, tuple[np.ndarray, ...]] = {}
    for size in other_sizes:
        if size != n_reference and size not in extra_sets:
            extra_sets[size] = tuple(rng.integers(0, size, size=size) for _ in range(n_bootstraps))
    return BootstrapDraws(index_sets=index_sets, halves=tuple(halves), extra_sets=extra_sets)


@dataclass(frozen=True)
class Table1Row:
    """One method's metrics: mean and std (ddof 0) over the bootstrap resamples.

    mean, std: keyed by the TABLE1_METRICS names (and every other SpikeComparison metric, e.g.
    the Pearson r's, which Table 1 does not show). runs: each resample's comparison.
    """

    method: str
    n_trials: int
    mean: dict[str, float]
    std: dict[str, float]
    runs: tuple[SpikeComparison, ...]


@dataclass(frozen=True)
class Table1:
    """Rows in the order the methods were given, then the "data vs data" row."""

    rows: tuple[Table1Row, ...]
    n_reference: int
    n_bootstraps: int
    seed: int
    bin_seconds: float
    max_count: int
    isi_quirk: bool
    draws: BootstrapDraws

    def row(self, method: str) -> Table1Row:
        for row in self.rows:
            if row.method == method:
                return row
        names = ", ".join(row.method for row in self.rows)
        raise KeyError(f"no row {method!r} in this table (rows: {names})")


def _summarise(method: str, n_trials: int, runs: list[SpikeComparison]) -> Table1Row:
    values = {name: np.array([getattr(run, name) for run in runs]) for name in METRIC_NAMES}
    # An infinite D_KL (model density 0 where the data's is not) makes its std NaN, quietly.
    with np.errstate(invalid="ignore"):
        std = {name: float(np.std(v)) for name, v in values.items()}
    return Table1Row(
        method=method,
        n_trials=n_trials,
        mean={name: float(np.mean(v)) for name, v in values.items()},
        std=std,
        runs=tuple(runs),
    )


def _statistics(
    spikes: np.ndarray | TrialStatistics, bin_seconds: float, name: str
) -> TrialStatistics:
    if isinstance(spikes, TrialStatistics):
        if not math.isclose(spikes.bin_seconds, bin_seconds):
            raise DataError(
                f"{name}: statistics were computed with bin_seconds={spikes.bin_seconds}, not "
                f"{bin_seconds}; recompute them with trial_statistics(..., "
                f"bin_seconds={bin_seconds})"
            )
        return spikes
    return trial_statistics(spikes, bin_seconds=bin_seconds)


def bootstrap_table(
    reference: np.ndarray | TrialStatistics,
    methods: Mapping[str, np.ndarray | TrialStatistics],
    *,
    n_bootstraps: int = 5,
    seed: int = 42,
    bin_seconds: float,
    isi_quirk: bool = True,
) -> Table1:
    """Table 1 of LDNS (§11.2) for `methods` against `reference`, plus the noise-floor row.

    reference: (n, T, N) counts (LDNS: the training spikes); methods: name -> (m, T', N)
    counts (LDNS: m = n samples per method). Either may be a `TrialStatistics` from
    `trial_statistics` to reuse one pass over an array. A method with m ≠ n trials gets its
    own index sets of size m (shared with other methods of that size), drawn after the
    shared ones. bin_seconds: 0.005 for the monkey data (ISI errors in seconds).
    isi_quirk: reproduce the reference's noise-floor ISI comparison (see the module
    docstring); False compares the two halves' ISI statistics.
    """
    if DATA_VS_DATA in methods:
        raise ConfigError(f"{DATA_VS_DATA!r} names the noise-floor row; rename that method")
    reference_stats = _statistics(reference, bin_seconds, "reference")
    method_stats = {name: _statistics(s, bin_seconds, name) for name, s in methods.items()}
    for name, stats in method_stats.items():
        if stats.n_neurons != reference_stats.n_neurons:
            raise DataError(
                f"{name} has {stats.n_neurons} neurons but the reference has "
                f"{reference_stats.n_neurons}; compare spikes of the same neurons"
            )
    n_reference = reference_stats.n_trials
    draws = draw_bootstraps(
        n_reference,
        n_bootstraps=n_bootstraps,
        seed=seed,
        other_sizes=[stats.n_trials for stats in method_stats.values()],
    )
    # LDNS §11.1: one population-count grid over the reference and every method.
    max_count = int(
        math.ceil(
            max(
                float(np.max(stats.population_counts))
                for stats in (reference_stats, *method_stats.values())
            )
        )
    )

    full_reference = reference_stats.pooled()
    rows = []
    for name, stats in method_stats.items():
        runs = [
            compare_statistics(stats.pooled(trials), full_reference, max_count=max_count)
            for trials in draws.sets_for(stats.n_trials, n_reference)
        ]
        rows.append(_summarise(name, stats.n_trials, runs))

    floor_runs = []
    for trials, (reference_half, complement) in zip(draws.index_sets, draws.halves, strict=True):
        bootstrapped_half = reference_stats.pooled(trials[complement])  # plays the model
        other_half = reference_stats.pooled(reference_half)
        floor_runs.append(
            compare_statistics(
                bootstrapped_half,
                other_half,
                max_count=max_count,
                isi_reference=full_reference if isi_quirk else None,
            )
        )
    rows.append(_summarise(DATA_VS_DATA, n_reference - n_reference // 2, floor_runs))
    return Table1(
        rows=tuple(rows),
        n_reference=n_reference,
        n_bootstraps=n_bootstraps,
        seed=seed,
        bin_seconds=float(bin_seconds),
        max_count=max_count,
        isi_quirk=isi_quirk,
        draws=draws,
    )


def table1_rows(table: Table1) -> list[dict[str, float | int | str]]:
    """Flat records for JSON or a printed table: per row `method`, `n_trials`, and for each
    Table-1 metric `<name>` (mean) and `<name>_std`."""
    records: list[dict[str, float | int | str]] = []
    for row in table.rows:
        record: dict[str, float | int | str] = {"method": row.method, "n_trials": row.n_trials}
        for name in TABLE1_METRICS:
            record[name] = row.mean[name]
            record[f"{name}_std"] = row.std[name]
        records.append(record)
    return records


def published_table1_rows() -> list[dict[str, float | str]]:
    """PUBLISHED_TABLE1 as records with the keys of `table1_rows` (no n_trials)."""
    records: list[dict[str, float | str]] = []
    for method, values in PUBLISHED_TABLE1.items():
        record: dict[str, float | str] = {"method": method}
        for name in TABLE1_METRICS:
            record[name], record[f"{name}_std"] = values[name]
        records.append(record)
    return records


def format_table1(table: Table1, *, published: bool = True) -> str:
    """A plain-text table of `table` (mean ± std), with the published LDNS rows below it.

    The ISI columns are in seconds (in bins when bin_seconds is 1); published values are for
    the monkey data at 5 ms bins only.
    """
    unit = "bins" if table.bin_seconds == 1.0 else "s"
    headers = ["method"] + [
        f"{label} ({unit})" if "ISI" in label else label for label in TABLE1_METRICS.values()
    ]
    lines = []

    def cells(record: Mapping[str, object]) -> list[str]:
        return [str(record["method"])] + [
            f"{record[name]:.3g} ± {record[f'{name}_std']:.2g}" for name in TABLE1_METRICS
        ]

    body = [cells(record) for record in table1_rows(table)]
    reference = [cells(record) for record in published_table1_rows()] if published else []
    widths = [max(len(row[i]) for row in [headers, *body, *reference]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    lines.append(line(headers))
    lines.extend(line(row) for row in body)
    if reference:
        lines.append("published (LDNS §13.1):")
        lines.extend(line(row) for row in reference)
    return "\n".join(lines)
