"""The synthetic-maze dataset on disk: simulate once, store under processed/synthetic-maze/<hash>/.

    <home>/processed/synthetic-maze/<hash>/synthetic-maze.h5   trial layout of interfaces §C
    <home>/processed/synthetic-maze/<hash>/settings.yaml       dataset, recipe, every setting

The session file holds what MC_Maze's does (spikes (n, 140, 182) uint8, velocity (n, 140, 2)
float32 m/s, segments trial / split / angle) plus the ground truth of the simulation: the
factors (n, 140, F), readout (N, F), bias (N,) and baseline (N,) from which
`synthetic_maze_rates` recomputes the Poisson means exactly, and the reach condition per trial.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.sources.synthetic_maze import (
    DATASET,
    SyntheticMazeSettings,
    simulate_synthetic_maze,
)
from neuralcli.data.store import (
    SessionData,
    holds_session,
    processed_dir,
    read_session,
    read_settings,
    write_session,
    write_settings,
)
from neuralcli.errors import DataError

SESSION = "synthetic-maze"
SESSION_FILE = f"{SESSION}.h5"
# Bump when the recipe's output changes for the same settings, so old folders are not reused.
RECIPE = "synthetic-maze-v1"
REMEDY = "delete it and run `neuralcli data fetch synthetic-maze` again"
_STORED_ARRAYS = ("spikes", "velocity", "factors", "readout", "bias", "baseline")


def synthetic_maze_settings_dict(settings: SyntheticMazeSettings | None = None) -> dict[str, Any]:
    """The settings.yaml content for `settings` (the folder hash is taken from it)."""
    settings = settings or SyntheticMazeSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}


def settings_from_dict(data: dict[str, Any]) -> SyntheticMazeSettings:
    """SyntheticMazeSettings back from a settings.yaml mapping (ignores dataset and recipe)."""
    fields = {k: v for k, v in data.items() if k not in ("dataset", "recipe")}
    try:
        return SyntheticMazeSettings(**fields)
    except (TypeError, ValueError) as err:
        raise DataError(f"synthetic-maze settings are invalid: {err}") from None


def synthetic_maze_dir(
    home: str | os.PathLike, settings: SyntheticMazeSettings | None = None
) -> Path:
    """<home>/processed/synthetic-maze/<hash> for `settings` (default: the full dataset)."""
    return processed_dir(home, DATASET, synthetic_maze_settings_dict(settings))


def synthetic_maze_path(
    home: str | os.PathLike, settings: SyntheticMazeSettings | None = None
) -> Path:
    """Path of the session file for `settings`, whether or not it exists yet."""
    return synthetic_maze_dir(home, settings) / SESSION_FILE


def is_prepared(home: str | os.PathLike, settings: SyntheticMazeSettings | None = None) -> bool:
    """True when settings.yaml matches and the session file opens with every stored array."""
    directory = synthetic_maze_dir(home, settings)
    return holds_session(directory, directory / SESSION_FILE, _STORED_ARRAYS, remedy=REMEDY)


def prepare_synthetic_maze(
    home: str | os.PathLike,
    settings: SyntheticMazeSettings | None = None,
    *,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Simulate and store the dataset unless a readable copy exists; returns the file's path.

    on_progress(1, 1) is called once the file is written (the simulation is one step)."""
    settings = settings or SyntheticMazeSettings()
    directory = synthetic_maze_dir(home, settings)
    path = directory / SESSION_FILE
    if not overwrite and is_prepared(home, settings):
        return path
    data = simulate_synthetic_maze(settings)
    n_neurons = settings.n_neurons
    window_start, window_stop = settings.window_seconds
    write_session(
        path,
        arrays={
            "spikes": data.spikes,
            "velocity": data.velocity,
            "factors": data.factors,
            "readout": data.readout,
            "bias": data.bias,
            "baseline": data.baseline,
        },
        segments={
            "trial": np.arange(settings.n_trials, dtype=np.int64),
            "split": data.split,
            "angle": data.angle,
            "condition": data.condition,
        },
        attrs={
            "dataset": DATASET,
            "session": SESSION,
            "recipe": RECIPE,
            "bin_seconds": settings.bin_seconds,
            "n_trials": settings.n_trials,
            "n_bins": settings.n_bins,
            "n_neurons": n_neurons,
            "window_seconds": [window_start, window_stop],
            "velocity_lag_seconds": settings.lag_seconds,
            "angle_bin": settings.angle_bin,
            "rates": "baseline * softplus(factors @ readout.T + bias) / softplus(bias)",
        },
        channel_names=[f"neuron_{i:0{len(str(n_neurons - 1))}d}" for i in range(n_neurons)],
        units={
            "spikes": "count",
            "velocity": "m/s",
            "factors": "unitless",
            "readout": "unitless",
            "bias": "unitless",
            "baseline": "count per bin",
            "angle": "rad",
        },
    )
    # Written last: its presence marks the folder complete.
    write_settings(directory, synthetic_maze_settings_dict(settings))
    if on_progress is not None:
        on_progress(1, 1)
    return path


def load_synthetic_maze(
    home: str | os.PathLike,
    settings: SyntheticMazeSettings | None = None,
    *,
    arrays: list[str] | None = None,
) -> SessionData:
    """The stored dataset for `settings`: arrays (spikes (n, T, N) uint8, velocity (n, T, 2)
    float32 m/s, factors (n, T, F), readout (N, F), bias (N,), baseline (N,)), segments (trial,
    split, angle in radians, condition), attrs (incl. bin_seconds) and neuron names.

    DataError when it has not been prepared.
    """
    directory = synthetic_maze_dir(home, settings)
    if not (directory / "settings.yaml").is_file():
        raise DataError(
            f"synthetic-maze data with these settings ({directory.name}) is not prepared under "
            f"{home}; run `neuralcli data fetch synthetic-maze` first"
        )
    read_settings(directory, remedy=REMEDY)
    return read_session(directory / SESSION_FILE, arrays, remedy=REMEDY)
