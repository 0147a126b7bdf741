"""The trial datasets LDNS trains on, behind one interface: settings, load, and per-split arrays.

Lorenz, MC_Maze, human and synthetic-maze each store one session file of trials with a
`split` segment column (interfaces §C). What differs is their settings class, whether they can
be simulated on first use, and the behaviour they carry: reach angle (segment `angle`), hand
velocity (array `velocity`) and the validity mask of variable-length trials (array `mask`).
`TRIAL_DATASETS` maps a dataset name to that description; `split_arrays` cuts one split out.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuralcli.data import human_dataset, lorenz_dataset, mc_maze_dataset, synthetic_maze_dataset
from neuralcli.data.store import SessionData
from neuralcli.errors import DataError

LORENZ_BIN_SECONDS = 1.0  # Lorenz time is in bins (LDNS §11: fps = 1)


@dataclass
class TrialConditions:
    """Per-trial behaviour of one split; None where the dataset has none."""

    angle: np.ndarray | None = None  # (n,) float32 reach angle θ, radians
    velocity: np.ndarray | None = None  # (n, T, 2) float32 hand velocity, m/s
    mask: np.ndarray | None = None  # (n, T) uint8, 1 = real bin

    def present(self) -> dict[str, np.ndarray]:
        """The conditions that exist, keyed angle / velocity / mask."""
        values = {"angle": self.angle, "velocity": self.velocity, "mask": self.mask}
        return {name: value for name, value in values.items() if value is not None}


@dataclass(frozen=True)
class TrialDataset:
    """How one trial dataset is configured, found and read."""

    name: str
    settings_dict: Callable[[Any], dict[str, Any]]  # settings -> settings.yaml (hashed)
    settings_from_dict: Callable[[dict[str, Any]], Any]
    is_prepared: Callable[[str | os.PathLike, Any], bool]
    load: Callable[..., SessionData]  # load(home, settings, arrays=[...])
    missing: str  # what to run when it is not on disk
    # synthetic datasets: simulate(home, settings, on_progress=fn(done, total)) builds them
    simulate: Callable[..., Any] | None = None
    arrays: tuple[str, ...] = ("spikes",)  # what a split needs
    default_bin_seconds: float | None = None  # for files that record no bin_seconds

    def bin_seconds(self, session: SessionData) -> float:
        return float(session.attrs.get("bin_seconds", self.default_bin_seconds))


TRIAL_DATASETS: dict[str, TrialDataset] = {
    "lorenz": TrialDataset(
        name="lorenz",
        settings_dict=lorenz_dataset.lorenz_settings_dict,
        settings_from_dict=lorenz_dataset.settings_from_dict,
        is_prepared=lorenz_dataset.is_prepared,
        load=lorenz_dataset.load_lorenz,
        missing="neuralcli data fetch lorenz",
        simulate=lorenz_dataset.prepare_lorenz,
        default_bin_seconds=LORENZ_BIN_SECONDS,
    ),
    "mc_maze": TrialDataset(
        name="mc_maze",
        settings_dict=mc_maze_dataset.mc_maze_settings_dict,
        settings_from_dict=mc_maze_dataset.settings_from_dict,
        is_prepared=mc_maze_dataset.is_prepared,
        load=mc_maze_dataset.load_mc_maze,
        missing="neuralcli data fetch mc_maze && neuralcli data segment mc_maze",
        arrays=("spikes", "velocity"),
    ),
    "human": TrialDataset(
        name="human",
        settings_dict=human_dataset.human_settings_dict,
        settings_from_dict=human_dataset.settings_from_dict,
        is_prepared=human_dataset.is_prepared,
        load=human_dataset.load_human,
        missing="neuralcli data fetch human && neuralcli data segment human",
        arrays=("spikes", "mask"),
    ),
    "synthetic-maze": TrialDataset(
        name="synthetic-maze",
        settings_dict=synthetic_maze_dataset.synthetic_maze_settings_dict,
        settings_from_dict=synthetic_maze_dataset.settings_from_dict,
        is_prepared=synthetic_maze_dataset.is_prepared,
        load=synthetic_maze_dataset.load_synthetic_maze,
        missing="neuralcli data fetch synthetic-maze",
        simulate=synthetic_maze_dataset.prepare_synthetic_maze,
        arrays=("spikes", "velocity"),
    ),
}


def get_trial_dataset(name: str) -> TrialDataset:
    """The description of trial dataset `name`; DataError naming the known ones otherwise."""
    try:
        return TRIAL_DATASETS[name]
    except KeyError:
        known = ", ".join(TRIAL_DATASETS)
        raise DataError(f"dataset {name!r} holds no LDNS trials; use one of {known}") from None


def split_arrays(session: SessionData, split: str) -> tuple[np.ndarray, TrialConditions]:
    """Spikes (n, T, N) and the conditions of the trials of `split`, in trial order."""
    rows = np.flatnonzero(session.segments["split"] == split)
    spikes = session.arrays["spikes"][rows]
    conditions = TrialConditions()
    if "velocity" in session.arrays:
        conditions.velocity = session.arrays["velocity"][rows].astype(np.float32)
    if "angle" in session.segments:
        conditions.angle = np.asarray(session.segments["angle"][rows], dtype=np.float32)
    if "mask" in session.arrays:
        conditions.mask = session.arrays["mask"][rows].astype(np.uint8)
    return spikes, conditions
