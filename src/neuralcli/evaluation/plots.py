"""Model-vs-data figures for spike trains (LDNS §11.1 statistics, §11.3 Lorenz figure style).

Figures are built with matplotlib's object API (`Figure`, no pyplot), so nothing touches global
state or needs a display, and each PNG is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuralcli.evaluation.spike_stats import (
    SpikeComparison,
    SpikeStatistics,
    compare_statistics,
    nan_pearson,
    population_count_density,
    spike_statistics,
)
from neuralcli.runtime.files import atomic_path

# matplotlib is imported where a figure is drawn: it costs ~30 MB and ~0.8 s at import, and the CLI
# imports this module for every command, training included.
if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_RASTER_TRIALS = 3
_MODEL_COLOR = "tab:red"
_DATA_COLOR = "black"


def _save(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        # The temporary name ends in .tmp, so the format cannot come from the suffix.
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _units(bin_seconds: float) -> tuple[str, str]:
    """(time unit, rate unit) of the statistics for this bin width."""
    return ("bins", "spikes/bin") if bin_seconds == 1.0 else ("s", "Hz")


def _identity_scatter(
    axes: Axes, data_values: np.ndarray, model_values: np.ndarray, *, title: str, unit: str
) -> None:
    """Model against data per entry, with the identity line."""
    keep = np.isfinite(data_values) & np.isfinite(model_values)
    x, y = data_values[keep], model_values[keep]
    axes.scatter(x, y, s=8, alpha=0.6, color=_MODEL_COLOR, linewidths=0)
    if x.size:
        low = float(min(x.min(), y.min()))
        high = float(max(x.max(), y.max()))
        axes.plot([low, high], [low, high], color="0.5", linewidth=1, linestyle="--")
    axes.set_xlabel(f"data ({unit})" if unit else "data")
    axes.set_ylabel(f"model ({unit})" if unit else "model")
    axes.set_title(title)


def _raster_figure(
    model: np.ndarray, data: np.ndarray, *, bin_seconds: float, title_prefix: str
) -> Figure:
    from matplotlib.figure import Figure

    n_show = min(_RASTER_TRIALS, model.shape[0], data.shape[0])
    figure = Figure(figsize=(4 * n_show, 6), layout="constrained")
    grid = figure.subplots(2, n_show, squeeze=False)
    time_unit, _ = _units(bin_seconds)
    for row, (name, spikes) in enumerate((("data", data), ("model", model))):
        for column in range(n_show):
            trial = spikes[column]  # (T, N)
            axes = grid[row, column]
            axes.imshow(
                trial.T,
                aspect="auto",
                interpolation="nearest",
                cmap="Greys",
                vmin=0,
                vmax=max(1, int(np.max(trial))),
                extent=(0, trial.shape[0] * bin_seconds, trial.shape[1], 0),
            )
            axes.set_title(f"{name}, trial {column}")
            axes.set_xlabel(f"time ({time_unit})")
            if column == 0:
                axes.set_ylabel("neuron")
    figure.suptitle(f"{title_prefix}spike rasters: data (top) vs model (bottom)")
    return figure


def _population_count_figure(
    model: SpikeStatistics, data: SpikeStatistics, comparison: SpikeComparison, title_prefix: str
) -> Figure:
    from matplotlib.figure import Figure

    max_count = int(np.ceil(max(model.population_counts.max(), data.population_counts.max())))
    grid = np.arange(max_count + 1)
    p = population_count_density(model.population_counts, max_count)
    q = population_count_density(data.population_counts, max_count)
    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.subplots()
    for name, counts, color in (
        ("data", data.population_counts, _DATA_COLOR),
        ("model", model.population_counts, _MODEL_COLOR),
    ):
        histogram = np.bincount(np.rint(counts).astype(np.int64), minlength=max_count + 1)
        axes.step(
            grid,
            histogram[: max_count + 1] / counts.size,
            where="mid",
            color=color,
            alpha=0.35,
            label=f"{name} histogram",
        )
    axes.plot(grid, q, color=_DATA_COLOR, label="data KDE")
    axes.plot(grid, p, color=_MODEL_COLOR, label="model KDE")
    axes.set_xlabel("population spike count per bin")
    axes.set_ylabel("probability")
    axes.legend(frameon=False, fontsize="small")
    axes.set_title(
        f"{title_prefix}population count (r = {comparison.pearson_population_count:.3f}, "
        f"KL = {comparison.kl_population_count:.2e})"
    )
    return figure


def plot_comparison(
    model: np.ndarray,
    data: np.ndarray,
    out_dir: str | os.PathLike,
    *,
    bin_seconds: float,
    title_prefix: str = "",
) -> list[Path]:
    """Write the model-vs-data figures as PNGs into `out_dir`; return their paths.

    raster.png: a few trials of data and model side by side. mean_rate.png: per-neuron mean rate,
    model against data. correlation.png: strict-lower-triangle correlation entries (LDNS §11.1).
    isi.png: per-neuron mean and std ISI. population_count.png: histograms and KDE densities of
    the population spike count. Titles give the Pearson r of each statistic (§11.3; the
    correlation r counts the zeroed upper triangle as the spec does).

    model: (trials_m, T, N), data: (trials_d, T', N) counts; bin_seconds: bin width (1.0: bins)
    """
    from matplotlib.figure import Figure

    model_stats = spike_statistics(model, bin_seconds=bin_seconds)  # also validates the arrays
    data_stats = spike_statistics(data, bin_seconds=bin_seconds)
    comparison = compare_statistics(model_stats, data_stats)
    model, data = np.asarray(model), np.asarray(data)
    time_unit, rate_unit = _units(bin_seconds)
    out_dir = Path(out_dir)
    written = [
        _save(
            _raster_figure(model, data, bin_seconds=bin_seconds, title_prefix=title_prefix),
            out_dir / "raster.png",
        )
    ]

    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    rate_r = nan_pearson(model_stats.mean_rate, data_stats.mean_rate)
    _identity_scatter(
        figure.subplots(),
        data_stats.mean_rate,
        model_stats.mean_rate,
        title=f"{title_prefix}mean rate (r = {rate_r:.3f})",
        unit=rate_unit,
    )
    written.append(_save(figure, out_dir / "mean_rate.png"))

    figure = Figure(figsize=(4.5, 4.5), layout="constrained")
    lower = np.tril_indices(data_stats.correlation.shape[0], k=-1)
    _identity_scatter(
        figure.subplots(),
        data_stats.correlation[lower],
        model_stats.correlation[lower],
        title=f"{title_prefix}pairwise correlation (r = {comparison.pearson_correlation:.3f})",
        unit="",
    )
    written.append(_save(figure, out_dir / "correlation.png"))

    figure = Figure(figsize=(9, 4.5), layout="constrained")
    mean_axes, std_axes = figure.subplots(1, 2)
    _identity_scatter(
        mean_axes,
        data_stats.mean_isi,
        model_stats.mean_isi,
        title=f"{title_prefix}mean ISI (r = {comparison.pearson_mean_isi:.3f})",
        unit=time_unit,
    )
    _identity_scatter(
        std_axes,
        data_stats.std_isi,
        model_stats.std_isi,
        title=f"{title_prefix}std ISI (r = {comparison.pearson_std_isi:.3f})",
        unit=time_unit,
    )
    written.append(_save(figure, out_dir / "isi.png"))

    written.append(
        _save(
            _population_count_figure(model_stats, data_stats, comparison, title_prefix),
            out_dir / "population_count.png",
        )
    )
    return written
