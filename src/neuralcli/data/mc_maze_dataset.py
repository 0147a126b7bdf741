"""MC_Maze (DANDI 000128 and the scaled variants) as LDNS trial tensors on disk.

    <home>/raw/mc_maze/sub-Jenkins/sub-Jenkins_ses-<s>_desc-{train_behavior+ecephys,test_ecephys}.nwb
    <home>/raw/mc_maze/MANIFEST.json
    <home>/processed/mc_maze/<hash>/<session>.h5    spikes, velocity; trial/split/angle table
    <home>/processed/mc_maze/<hash>/settings.yaml   every McMazeSettings field, written last

<session> is the NLB dataset name of the variant: mc_maze, mc_maze_large, mc_maze_medium,
mc_maze_small. The recipe is data-sources §3.1 (see neuralcli.data.sources.mc_maze).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neuralcli.data.sources.dandi import MC_MAZE_VARIANTS, DandisetRef
from neuralcli.data.sources.mc_maze import make_ldns_tensors, read_mc_maze_nwb
from neuralcli.data.store import (
    SessionData,
    holds_session,
    processed_dir,
    read_session,
    read_settings,
    write_session,
    write_settings,
)
from neuralcli.errors import ConfigError, DataError

if TYPE_CHECKING:  # the data layer does not import the pipelines at run time
    from neuralcli.pipelines.progress import ProgressReporter

DATASET = "mc_maze"
# Bump when the recipe's output changes for the same settings, so old folders are not reused.
RECIPE = "ldns-mc-maze-v1"
REMEDY = "delete it and run `neuralcli data segment mc_maze` again"
BIN_SECONDS = 0.005
# nlb_tools' behaviour lag per variant: hand velocity trails the neural window (ms).
NLB_LAG_MS = {"full": 100, "large": 120, "medium": 120, "small": 120}
SESSION_NAMES = {
    "full": "mc_maze",
    "large": "mc_maze_large",
    "medium": "mc_maze_medium",
    "small": "mc_maze_small",
}
_STORED_ARRAYS = ("spikes", "velocity")


@dataclass(frozen=True)
class McMazeSettings:
    """Every parameter of the LDNS MC_Maze recipe (data-sources §3.1); settings.yaml holds all.

    `lag_ms` None (the default) takes nlb_tools' lag of the variant, 100 ms for the full
    dataset and 120 ms for the scaled ones (`effective_lag_ms`); it stays None in
    settings.yaml so that changing only the variant picks the variant's lag.
    """

    variant: str = "full"  # full | large | medium | small
    bin_ms: int = 5
    window_ms: tuple[int, int] = (-250, 450)  # around move onset; 700 ms -> 140 bins
    lag_ms: int | None = None
    seed: int = 42  # torch generator of the val/test split
    velocity_scale: float = 0.001  # mm/s -> m/s
    angle_bin: int = 50  # behaviour bin of the reach angle
    fir_order: int = 500  # decimation FIR of hand_vel

    def __post_init__(self) -> None:
        if self.variant not in MC_MAZE_VARIANTS:
            raise ConfigError(
                f"variant must be one of {', '.join(MC_MAZE_VARIANTS)}, got {self.variant!r}"
            )
        if self.bin_ms < 1:
            raise ConfigError(
                f"bin_ms must be a positive number of milliseconds, got {self.bin_ms}"
            )
        window = tuple(int(v) for v in self.window_ms)
        if len(window) != 2 or window[1] <= window[0] or (window[1] - window[0]) % self.bin_ms:
            raise ConfigError(
                f"window_ms must be (start, end) with end > start and a length that is a "
                f"multiple of bin_ms={self.bin_ms}, got {self.window_ms}"
            )
        object.__setattr__(self, "window_ms", window)
        n_steps = (window[1] - window[0]) // self.bin_ms
        if not 0 <= self.angle_bin < n_steps:
            raise ConfigError(f"angle_bin must lie in 0..{n_steps - 1}, got {self.angle_bin}")
        if self.fir_order < 2:
            raise ConfigError(f"fir_order must be at least 2, got {self.fir_order}")

    @property
    def effective_lag_ms(self) -> int:
        """Milliseconds the velocity window trails the spike window."""
        return NLB_LAG_MS[self.variant] if self.lag_ms is None else int(self.lag_ms)

    @property
    def n_steps(self) -> int:
        return (self.window_ms[1] - self.window_ms[0]) // self.bin_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mc_maze_settings_dict(settings: McMazeSettings | None = None) -> dict[str, Any]:
    """The settings.yaml content of `settings` (the processed folder's hash is taken of it)."""
    settings = settings or McMazeSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}


def settings_from_dict(data: dict[str, Any]) -> McMazeSettings:
    """McMazeSettings back from a settings.yaml mapping (ignores dataset and recipe)."""
    fields = {k: v for k, v in data.items() if k not in ("dataset", "recipe")}
    if "window_ms" in fields:
        fields["window_ms"] = tuple(fields["window_ms"])
    try:
        return McMazeSettings(**fields)
    except TypeError as err:
        raise DataError(f"MC_Maze settings are invalid: {err}") from None


# --------------------------------------------------------------------------- paths


def mc_maze_raw_dir(home: str | os.PathLike) -> Path:
    """`<home>/raw/mc_maze`: the NWB files at their dandiset paths, and MANIFEST.json."""
    return Path(home) / "raw" / DATASET


def mc_maze_asset_paths(variant: str) -> tuple[str, str]:
    """(train, test) file paths inside the variant's dandiset (data-sources §3)."""
    ref = variant_ref(variant)
    stem = f"sub-Jenkins/sub-Jenkins_ses-{ref.session}"
    return f"{stem}_desc-train_behavior+ecephys.nwb", f"{stem}_desc-test_ecephys.nwb"


def mc_maze_raw_paths(home: str | os.PathLike, variant: str) -> tuple[Path, Path]:
    """(train, test) NWB files of `variant` under `<home>/raw/mc_maze/`."""
    root = mc_maze_raw_dir(home)
    train, test = mc_maze_asset_paths(variant)
    return root / train, root / test


def variant_ref(variant: str) -> DandisetRef:
    """The pinned dandiset of `variant`; DataError naming the variants otherwise."""
    try:
        return MC_MAZE_VARIANTS[variant]
    except KeyError:
        known = ", ".join(MC_MAZE_VARIANTS)
        raise DataError(f"unknown MC_Maze variant {variant!r}; choose one of {known}") from None


def session_name(settings: McMazeSettings) -> str:
    return SESSION_NAMES[settings.variant]


def mc_maze_dir(home: str | os.PathLike, settings: McMazeSettings | None = None) -> Path:
    """<home>/processed/mc_maze/<hash> for `settings` (default: the LDNS ones)."""
    return processed_dir(home, DATASET, mc_maze_settings_dict(settings))


def mc_maze_path(home: str | os.PathLike, settings: McMazeSettings | None = None) -> Path:
    """Path of the session file for `settings`, whether or not it exists yet."""
    settings = settings or McMazeSettings()
    return mc_maze_dir(home, settings) / f"{session_name(settings)}.h5"


# --------------------------------------------------------------------------- build and load


def is_prepared(home: str | os.PathLike, settings: McMazeSettings | None = None) -> bool:
    """True when settings.yaml matches and the session file opens with spikes and velocity."""
    settings = settings or McMazeSettings()
    path = mc_maze_path(home, settings)
    return holds_session(path.parent, path, _STORED_ARRAYS, remedy=REMEDY)


def build_mc_maze(
    home: str | os.PathLike,
    settings: McMazeSettings | None = None,
    *,
    reporter: ProgressReporter | None = None,
) -> Path:
    """Turn the variant's train NWB file into the LDNS tensors; returns the session file.

    Writes spikes (n, 140, N) uint8, velocity (n, 140, 2) float32 m/s and the trial / split /
    angle table, then settings.yaml. The test file, when present, is only checked to hold
    as many units as the train file's held-in group. DataError when the train file is missing.
    """
    settings = settings or McMazeSettings()
    reporter = reporter or _Silent()
    train_path, test_path = mc_maze_raw_paths(home, settings.variant)
    if not train_path.is_file():
        raise DataError(
            f"{train_path} is missing; run `neuralcli data fetch mc_maze --variant "
            f"{settings.variant}` first"
        )
    reporter.message(f"reading {train_path.name}")
    train = read_mc_maze_nwb(train_path)
    if test_path.is_file():
        _check_test_file(test_path, int((~train.units.heldout).sum()))
    task = f"{session_name(settings)} units"
    reporter.start(task, len(train.units.ids))
    tensors = make_ldns_tensors(
        train,
        bin_ms=settings.bin_ms,
        window_ms=settings.window_ms,
        lag_ms=settings.effective_lag_ms,
        seed=settings.seed,
        velocity_scale=settings.velocity_scale,
        angle_bin=settings.angle_bin,
        fir_order=settings.fir_order,
        on_progress=lambda done, total: reporter.update(task, done),
    )
    reporter.finish(task)
    if tensors.dropped_trials:
        reporter.message(
            f"{len(tensors.dropped_trials)} trial(s) dropped: their spike window leaves the "
            f"recorded intervals (NWB trial rows {tensors.dropped_trials[:10]})"
        )
    ref = variant_ref(settings.variant)
    directory = mc_maze_dir(home, settings)
    path = write_session(
        mc_maze_path(home, settings),
        arrays={"spikes": tensors.spikes, "velocity": tensors.velocity},
        segments={"trial": tensors.trial, "split": tensors.split, "angle": tensors.angle},
        attrs={
            "dataset": DATASET,
            "session": session_name(settings),
            "recipe": RECIPE,
            "bin_seconds": settings.bin_ms / 1000,
            "n_neurons": len(tensors.unit_names),
            "n_heldin": tensors.n_heldin,
            "n_heldout": len(tensors.unit_names) - tensors.n_heldin,
            "n_steps": settings.n_steps,
            "window_ms": list(settings.window_ms),
            "lag_ms": settings.effective_lag_ms,
            "dandiset": f"DANDI:{ref.dandiset_id}/{ref.version}",
            "source_file": train_path.name,
            "dropped_trials": tensors.dropped_trials,
            "velocity_gap_bins": tensors.velocity_gap_bins,
        },
        channel_names=tensors.unit_names,
        units={"spikes": "count", "velocity": "m/s", "angle": "rad"},
    )
    # Written last: its presence marks the folder complete.
    write_settings(directory, mc_maze_settings_dict(settings))
    return path


def load_mc_maze(
    home: str | os.PathLike,
    settings: McMazeSettings | None = None,
    *,
    arrays: list[str] | None = None,
) -> SessionData:
    """The stored tensors for `settings`: spikes (n, T, N), velocity (n, T, 2) m/s, the
    trial / split / angle table, attrs and unit names (held-in first).

    DataError when they have not been prepared.
    """
    settings = settings or McMazeSettings()
    directory = mc_maze_dir(home, settings)
    if not (directory / "settings.yaml").is_file():
        raise DataError(
            f"MC_Maze ({settings.variant}) with these settings ({directory.name}) is not "
            f"prepared under {home}; run `neuralcli data fetch mc_maze --variant "
            f"{settings.variant}` and `neuralcli data segment mc_maze` first"
        )
    read_settings(directory, remedy=REMEDY)
    return read_session(mc_maze_path(home, settings), arrays, remedy=REMEDY)


class _Silent:
    def start(self, task: str, total: int) -> None:
        pass

    def update(self, task: str, completed: int, **fields: Any) -> None:
        pass

    def finish(self, task: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


def _check_test_file(path: Path, n_heldin: int) -> None:
    test = read_mc_maze_nwb(path)
    n_units = len(test.units.ids)
    if n_units != n_heldin or bool(np.any(test.units.heldout)):
        raise DataError(
            f"{path} holds {n_units} units but the train file has {n_heldin} held-in units; "
            "the two files are not a pair: delete them and fetch the variant again"
        )
