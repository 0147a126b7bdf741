"""Figures for conditioned samples (LDNS §9, §11.3): per-condition mean rates and decoded
velocity next to the condition.

Built with matplotlib's object API (`Figure`, Agg rendering, no pyplot), each PNG written
atomically, like evaluation/plots.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neuralcli.errors import DataError
from neuralcli.evaluation.behavior import ANGLE_BIN, angle_errors, reach_angle
from neuralcli.runtime.files import atomic_path

# matplotlib is imported where a figure is drawn: it costs ~30 MB and ~0.8 s at import, and the CLI
# imports this module for every command, training included.
if TYPE_CHECKING:
    from matplotlib.figure import Figure

_REAL_STYLE = "-"
_SAMPLED_STYLE = "--"


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        # The temporary name ends in .tmp, so the format cannot come from the suffix.
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _time_axis(n_bins: int, bin_seconds: float) -> tuple[np.ndarray, str]:
    if bin_seconds == 1.0:
        return np.arange(n_bins, dtype=np.float64), "time (bins)"
    return np.arange(n_bins) * bin_seconds, "time (s)"


def angle_bin_index(angles: np.ndarray, n_bins: int) -> np.ndarray:
    """Which of `n_bins` equal sectors of [−π, π) each angle falls in: (n,) -> (n,) ints."""
    wrapped = (np.asarray(angles, dtype=np.float64) + np.pi) % (2 * np.pi)  # [0, 2π)
    return np.minimum((wrapped / (2 * np.pi) * n_bins).astype(np.int64), n_bins - 1)


def plot_condition_rates(
    real_rates: np.ndarray,
    real_angles: np.ndarray,
    sampled_rates: np.ndarray,
    sampled_angles: np.ndarray,
    path: str | os.PathLike,
    *,
    neurons: list[int] | None = None,
    neuron_labels: list[int] | None = None,
    n_angle_bins: int = 8,
    bin_seconds: float = 1.0,
) -> Path:
    """PSTH-like mean rate per reach-angle sector, real (solid) vs sampled (dashed).

    One panel per neuron (default: the 4 with the highest mean real rate); within a panel one
    colour per angle sector of [−π, π). Rates are per bin, shown in Hz unless bin_seconds is 1.
    real_rates: (n, T, N) (e.g. AE rates or smoothed spikes of real trials), real_angles: (n,)
    radians; sampled_rates: (m, T, N) rates of angle-conditioned samples, sampled_angles: (m,)
    their condition. neuron_labels: the panel titles' neuron numbers, one per entry of
    `neurons` (default: `neurons` itself), for rates that hold a subset of the population.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    real_rates = np.asarray(real_rates)
    sampled_rates = np.asarray(sampled_rates)
    real_angles = np.asarray(real_angles, dtype=np.float64).reshape(-1)
    sampled_angles = np.asarray(sampled_angles, dtype=np.float64).reshape(-1)
    if real_rates.ndim != 3 or sampled_rates.ndim != 3:
        raise DataError("rates must be (trials, T, N) arrays")
    if real_rates.shape[0] != real_angles.size or sampled_rates.shape[0] != sampled_angles.size:
        raise DataError("pass one angle per trial for both the real and the sampled rates")
    if neurons is None:
        neurons = np.argsort(real_rates.mean(axis=(0, 1)))[::-1][:4].tolist()
    labels = list(neurons) if neuron_labels is None else list(neuron_labels)
    if len(labels) != len(neurons):
        raise DataError(f"pass one label per neuron: {len(neurons)} neurons, {len(labels)} labels")
    scale = 1.0 if bin_seconds == 1.0 else 1.0 / bin_seconds
    unit = "spikes/bin" if bin_seconds == 1.0 else "Hz"
    real_sector = angle_bin_index(real_angles, n_angle_bins)
    sampled_sector = angle_bin_index(sampled_angles, n_angle_bins)
    colours = colormaps["hsv"](np.linspace(0.0, 1.0, n_angle_bins, endpoint=False))

    figure = Figure(figsize=(4 * len(neurons), 3.8), layout="constrained")
    panels = figure.subplots(1, len(neurons), squeeze=False)[0]
    for axes, neuron, neuron_label in zip(panels, neurons, labels, strict=True):
        for sector in range(n_angle_bins):
            for rates, sectors, style in (
                (real_rates, real_sector, _REAL_STYLE),
                (sampled_rates, sampled_sector, _SAMPLED_STYLE),
            ):
                chosen = sectors == sector
                if not chosen.any():
                    continue
                time, label = _time_axis(rates.shape[1], bin_seconds)
                mean = rates[chosen, :, neuron].mean(axis=0, dtype=np.float64) * scale  # (T,)
                legend = None
                if style == _REAL_STYLE and axes is panels[0]:
                    low = -180 + 360 * sector / n_angle_bins
                    legend = f"{low:.0f}° to {low + 360 / n_angle_bins:.0f}°"
                axes.plot(time, mean, style, color=colours[sector], linewidth=1.2, label=legend)
                axes.set_xlabel(label)
        axes.set_title(f"neuron {neuron_label}")
        axes.set_ylabel(f"mean rate ({unit})")
    panels[0].legend(frameon=False, fontsize="x-small", title="reach angle")
    figure.suptitle(
        f"mean rate per reach angle ({n_angle_bins} sectors): real solid, sampled dashed"
    )
    return _save(figure, path)


def plot_decoded_velocity(
    condition: np.ndarray,
    decoded: np.ndarray,
    path: str | os.PathLike,
    *,
    n_examples: int = 4,
    n_trajectories: int = 16,
    bin_seconds: float = 1.0,
) -> Path:
    """Velocity decoded from velocity-conditioned samples next to the condition.

    Top row: v_x and v_y traces of the first `n_examples` samples (condition solid, decoded
    dashed). Bottom row: trajectories (cumulative sum of velocity × bin width, LDNS §11.3) of
    the first `n_trajectories` samples, condition on the left and decoded on the right,
    coloured by the condition's reach angle. condition, decoded: (n, T, 2) in m/s.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    condition = np.asarray(condition, dtype=np.float64)
    decoded = np.asarray(decoded, dtype=np.float64)
    if condition.ndim != 3 or condition.shape[2] != 2 or condition.shape != decoded.shape:
        raise DataError(
            f"condition {condition.shape} and decoded {decoded.shape} must both be (n, T, 2)"
        )
    n_examples = max(1, min(n_examples, condition.shape[0]))
    n_paths = max(1, min(n_trajectories, condition.shape[0]))
    time, label = _time_axis(condition.shape[1], bin_seconds)
    angle = reach_angle(condition, min(ANGLE_BIN, condition.shape[1] - 1))  # (n,) radians
    colours = colormaps["hsv"]((angle + np.pi) / (2 * np.pi))

    figure = Figure(figsize=(3.2 * max(n_examples, 2), 7), layout="constrained")
    grid = figure.add_gridspec(2, max(n_examples, 2))
    for column in range(n_examples):
        axes = figure.add_subplot(grid[0, column])
        for dim, colour in ((0, "tab:blue"), (1, "tab:orange")):
            axes.plot(
                time, condition[column, :, dim], _REAL_STYLE, color=colour, label=f"v{'xy'[dim]}"
            )
            axes.plot(time, decoded[column, :, dim], _SAMPLED_STYLE, color=colour)
        axes.set_title(f"sample {column}")
        axes.set_xlabel(label)
        if column == 0:
            axes.set_ylabel("velocity (m/s)")
            axes.legend(frameon=False, fontsize="small")
    half = max(n_examples, 2) // 2
    position_unit = "m" if bin_seconds != 1.0 else "m/s × bins"
    for name, velocity, slot in (
        ("condition", condition, grid[1, :half]),
        ("decoded", decoded, grid[1, half:]),
    ):
        axes = figure.add_subplot(slot)
        paths = np.cumsum(velocity[:n_paths], axis=1) * bin_seconds  # (n, T, 2)
        for index in range(n_paths):
            axes.plot(paths[index, :, 0], paths[index, :, 1], color=colours[index], linewidth=1)
        axes.set_aspect("equal", adjustable="datalim")
        axes.set_title(f"{name} trajectories")
        axes.set_xlabel(f"x ({position_unit})")
        axes.set_ylabel(f"y ({position_unit})")
    figure.suptitle("velocity: condition (solid) vs decoded from samples (dashed)")
    return _save(figure, path)


def plot_angle_errors(
    decoded_angles: np.ndarray,
    condition_angles: np.ndarray,
    path: str | os.PathLike,
    *,
    tolerance_degrees: float = 30.0,
) -> Path:
    """Decoded reach angle against the condition angle, and the histogram of their errors.

    decoded_angles, condition_angles: (n,) radians; the shaded band is ± tolerance_degrees.
    """
    from matplotlib.figure import Figure

    errors = angle_errors(decoded_angles, condition_angles)  # (n,) degrees
    condition_degrees = np.degrees(np.asarray(condition_angles, dtype=np.float64))
    figure = Figure(figsize=(9, 4), layout="constrained")
    scatter_axes, histogram_axes = figure.subplots(1, 2)
    # condition + wrapped error: a decoded angle just across ±180° stays next to the diagonal.
    scatter_axes.scatter(
        condition_degrees, condition_degrees + errors, s=8, alpha=0.6, linewidths=0
    )
    scatter_axes.plot([-180, 180], [-180, 180], color="0.5", linestyle="--", linewidth=1)
    scatter_axes.set_xlabel("condition angle (°)")
    scatter_axes.set_ylabel("decoded angle (°, unwrapped to the condition)")
    within = float(np.mean(np.abs(errors) <= tolerance_degrees)) if errors.size else float("nan")
    scatter_axes.set_title(f"{100 * within:.0f}% within ±{tolerance_degrees:g}°")
    histogram_axes.hist(errors, bins=np.linspace(-180, 180, 37), color="tab:red", alpha=0.7)
    histogram_axes.axvspan(-tolerance_degrees, tolerance_degrees, color="0.85", zorder=0)
    histogram_axes.set_xlabel("decoded − condition angle (°)")
    histogram_axes.set_ylabel("samples")
    return _save(figure, path)
