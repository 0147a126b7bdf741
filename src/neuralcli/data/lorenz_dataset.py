"""The Lorenz dataset on disk: simulate once, store under processed/lorenz/<hash>/.

    <home>/processed/lorenz/<hash>/lorenz.h5       spikes, latents, readout; trial/split table
    <home>/processed/lorenz/<hash>/settings.yaml   dataset, recipe and every LorenzSettings field

Rates are not stored: float32 rates are 4x the spikes and barely compress (18% with gzip);
`lorenz_rates(latents, readout, bias, softplus_beta)` recomputes them exactly from the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.sources.lorenz import LorenzSettings, ProgressFn, simulate_lorenz
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

DATASET = "lorenz"
SESSION_FILE = "lorenz.h5"
# Bump when the recipe's output changes for the same settings, so old folders are not reused.
RECIPE = "ldns-lorenz-v1"
REMEDY = "delete it and run `neuralcli data fetch lorenz` again"
_STORED_ARRAYS = ("spikes", "latents", "readout")


def lorenz_settings_dict(settings: LorenzSettings | None = None) -> dict[str, Any]:
    """The settings.yaml content for `settings` (the folder hash is taken from it)."""
    settings = settings or LorenzSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}


def settings_from_dict(data: dict[str, Any]) -> LorenzSettings:
    """LorenzSettings back from a settings.yaml mapping (ignores dataset and recipe)."""
    fields = {k: v for k, v in data.items() if k not in ("dataset", "recipe")}
    try:
        return LorenzSettings(**fields)
    except (TypeError, ValueError) as err:
        raise DataError(f"Lorenz settings are invalid: {err}") from None


def lorenz_dir(home: str | os.PathLike, settings: LorenzSettings | None = None) -> Path:
    """<home>/processed/lorenz/<hash> for `settings` (default: the LDNS ones)."""
    return processed_dir(home, DATASET, lorenz_settings_dict(settings))


def lorenz_path(home: str | os.PathLike, settings: LorenzSettings | None = None) -> Path:
    """Path of the session file for `settings`, whether or not it exists yet."""
    return lorenz_dir(home, settings) / SESSION_FILE


def is_prepared(home: str | os.PathLike, settings: LorenzSettings | None = None) -> bool:
    """True when settings.yaml matches and lorenz.h5 opens with every stored array."""
    directory = lorenz_dir(home, settings)
    return holds_session(directory, directory / SESSION_FILE, _STORED_ARRAYS, remedy=REMEDY)


def prepare_lorenz(
    home: str | os.PathLike,
    settings: LorenzSettings | None = None,
    *,
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
    overwrite: bool = False,
) -> Path:
    """Simulate and store the dataset unless a readable copy exists; returns lorenz.h5's path.

    A present but unreadable copy is simulated again. `workers` and `on_progress` go to
    `simulate_lorenz` (progress counts integrated trajectories).
    """
    settings = settings or LorenzSettings()
    directory = lorenz_dir(home, settings)
    path = directory / SESSION_FILE
    if not overwrite and is_prepared(home, settings):
        return path
    data = simulate_lorenz(settings, workers=workers, on_progress=on_progress)
    n_neurons = settings.n_neurons
    write_session(
        path,
        arrays={"spikes": data.spikes, "latents": data.latents, "readout": data.readout},
        segments={"trial": np.arange(settings.n_trials, dtype=np.int64), "split": data.split},
        attrs={
            "dataset": DATASET,
            "recipe": RECIPE,
            "n_trials": settings.n_trials,
            "length": settings.length,
            "n_neurons": n_neurons,
            "bias": data.bias,
            "softplus_beta": settings.softplus_beta,
            "bin_size": "1 bin (dimensionless time)",
        },
        channel_names=[f"neuron_{i:0{len(str(n_neurons - 1))}d}" for i in range(n_neurons)],
        units={"spikes": "count per bin", "latents": "z-score", "readout": "unitless"},
    )
    # Written last: its presence marks the folder complete.
    write_settings(directory, lorenz_settings_dict(settings))
    return path


def load_lorenz(
    home: str | os.PathLike,
    settings: LorenzSettings | None = None,
    *,
    arrays: list[str] | None = None,
) -> SessionData:
    """The stored dataset for `settings`: arrays (spikes (n, T, N), latents (n, T, 3),
    readout (N, 3)), the trial/split table, attrs (incl. bias) and neuron names.

    DataError when it has not been prepared.
    """
    directory = lorenz_dir(home, settings)
    if not (directory / "settings.yaml").is_file():
        raise DataError(
            f"Lorenz data with these settings ({directory.name}) is not prepared under {home}; "
            "run `neuralcli data fetch lorenz` first"
        )
    read_settings(directory, remedy=REMEDY)
    return read_session(directory / SESSION_FILE, arrays, remedy=REMEDY)
