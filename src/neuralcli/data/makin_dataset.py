"""Makin/O'Doherty monkey I sessions as paired recordings (data-sources §1, §6.1, §7.1, §8).

raw/makin/indy_<session>.mat  sorted spikes, cursor and target positions (250 Hz)
raw/makin/indy_<session>.nwb  96-channel broadband at 24.4 kHz (NWB 1.0.6)
    -> 10 ms grid of the resampled cursor velocity, trimmed to the target changes
    -> LFP streamed from the broadband and interpolated onto that grid
    -> spike counts of every sorted unit on the same bins
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.preprocess.kinematics import makin_velocity
from neuralcli.data.preprocess.lfp import LfpSettings, extract_broadband_lfp, interpolate_to_grid
from neuralcli.data.preprocess.spikes import bin_spike_times, select_units
from neuralcli.data.recording import PairedRecording
from neuralcli.data.segment import SegmentSettings
from neuralcli.data.sources.makin import open_broadband, read_makin_mat
from neuralcli.errors import ConfigError

DATASET = "makin"
# Bump when the recipe's output changes for the same settings, so old folders are not reused.
RECIPE = "makin-paired-v1"
REMEDY = "delete it and run `neuralcli data segment makin` again"
TARGET_CHANGES = ("sum", "any")


@dataclass(frozen=True)
class MakinSettings:
    """Every parameter of the Makin recipe; settings.yaml holds them all."""

    lfp: LfpSettings = field(default_factory=LfpSettings)
    segment: SegmentSettings = field(default_factory=SegmentSettings)
    with_lfp: bool = True  # False: spikes and velocity only (no broadband needed)
    include_hash_units: bool = False  # row 0 of `spikes`: unsorted threshold crossings
    min_rate_hz: float = 1.0  # drop units firing less over the kept session (§8)
    target_change: str = "sum"  # "sum" reproduces quirk 8b; "any" sees every target change
    zscore_statistics: str = "session"  # "session" as the original (quirk 6) or "train"

    def __post_init__(self) -> None:
        if self.target_change not in TARGET_CHANGES:
            raise ConfigError(
                f"target_change must be one of {TARGET_CHANGES}, got {self.target_change!r}"
            )
        if self.zscore_statistics not in ("session", "train"):
            raise ConfigError(
                f"zscore_statistics must be 'session' or 'train', got {self.zscore_statistics!r}"
            )
        if self.min_rate_hz < 0:
            raise ConfigError(f"min_rate_hz must be >= 0, got {self.min_rate_hz}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def makin_settings_dict(settings: MakinSettings | None = None) -> dict[str, Any]:
    """The settings.yaml content of `settings` (the processed folder's hash is taken of it)."""
    settings = settings or MakinSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}


def build_makin_recording(
    mat_path: str | os.PathLike,
    nwb_path: str | os.PathLike | None,
    settings: MakinSettings,
    *,
    session: str,
    max_memory_bytes: int,
    workdir: str | os.PathLike,
    on_progress: Callable[[int, int], None] | None = None,
) -> PairedRecording:
    """One session's streams on its 10 ms grid, not yet z-scored.

    `nwb_path` may be None only when `settings.with_lfp` is False. `on_progress(done, total)`
    counts broadband samples.
    """
    mat = read_makin_mat(Path(mat_path))
    kinematics = makin_velocity(
        mat.t,
        mat.cursor_pos,
        mat.target_pos,
        bin_seconds=settings.segment.bin_seconds,
        target_change=settings.target_change,
    )
    grid = kinematics.grid_times  # (n,)
    if settings.with_lfp:
        if nwb_path is None:
            raise ValueError("with_lfp needs the broadband file")
        with open_broadband(Path(nwb_path)) as source:
            stream = extract_broadband_lfp(
                source,
                settings=settings.lfp,
                max_memory_bytes=max_memory_bytes,
                workdir=Path(workdir),
                on_progress=on_progress,
            )
            channel_names = list(source.channel_names)
        lfp = interpolate_to_grid(stream.times, stream.lfp, grid)  # (n, C), §6.1 step 10
        del stream  # the ~100 Hz output; the grid copy replaces it
    else:
        lfp = np.zeros((grid.shape[0], 0), dtype=np.float32)
        channel_names = []
    units = [u for u in mat.units if settings.include_hash_units or u.unit_index > 0]
    counts = bin_spike_times(
        [u.spike_times for u in units],
        start=float(grid[0]),
        bin_seconds=kinematics.bin_seconds,
        n_bins=grid.shape[0],
    )  # (n, U)
    counts, unit_names = select_units(
        counts,
        [u.name for u in units],
        min_rate_hz=settings.min_rate_hz,
        bin_seconds=kinematics.bin_seconds,
    )
    return PairedRecording(
        dataset=DATASET,
        session=session,
        times=grid,
        lfp=np.asarray(lfp, dtype=np.float32),
        spikes=counts,
        velocity=np.asarray(kinematics.velocity, dtype=np.float32),
        channel_names=channel_names,
        unit_names=list(unit_names),
        bin_seconds=float(kinematics.bin_seconds),
    )
