"""Flint 2012 centre-out sessions (monkey C) as paired recordings (data-sources §2, §6.2, §7.2).

raw/flint/Flint_2012_e<k>.mat   one file per experiment, one Subject element per session
    -> trials concatenated, grid linspace(t0, tend, int((tend - t0) / 10 ms))
    -> LFP: common average on the raw 2 kHz signal, 50 Hz low-pass, resampled to the grid
    -> hand velocity interpolated onto the grid; spikes pooled over trials and binned
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neuralcli.data.preprocess.kinematics import flint_velocity
from neuralcli.data.preprocess.lfp import LfpSettings, flint_lfp
from neuralcli.data.preprocess.spikes import bin_spike_times, select_units
from neuralcli.data.recording import PairedRecording
from neuralcli.data.segment import SegmentSettings
from neuralcli.data.sources.flint import FlintSession
from neuralcli.errors import ConfigError

DATASET = "flint"
RECIPE = "flint-paired-v1"
REMEDY = "delete it and run `neuralcli data segment flint` again"
LFP_RATE_HZ = 2000.0  # data-sources §2


def _flint_segment_defaults() -> SegmentSettings:
    return SegmentSettings(velocity_outlier_iqr=1.5)  # §9: Flint drops noisy 10 s segments


@dataclass(frozen=True)
class FlintSettings:
    """Every parameter of the Flint recipe. The original applies no notch and no high-pass
    to Flint (§6.2), so unlike Makin there are no such fields here."""

    lowpass_hz: float = 50.0
    filter_order: int = 2
    common_average: bool = True  # on the raw 2 kHz LFP, before the low-pass (§6.2 step 3)
    segment: SegmentSettings = field(default_factory=_flint_segment_defaults)
    min_rate_hz: float = 1.0
    max_gap_seconds: float = 0.05  # warn when trials are further apart than this (quirk 9)
    zscore_statistics: str = "session"

    def __post_init__(self) -> None:
        if self.zscore_statistics not in ("session", "train"):
            raise ConfigError(
                f"zscore_statistics must be 'session' or 'train', got {self.zscore_statistics!r}"
            )
        if self.lowpass_hz <= 0 or self.lowpass_hz >= LFP_RATE_HZ / 2:
            raise ConfigError(
                f"lowpass_hz must be in (0, {LFP_RATE_HZ / 2}), got {self.lowpass_hz}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lfp_settings(self) -> LfpSettings:
        return LfpSettings(
            lowpass_hz=self.lowpass_hz,
            filter_order=self.filter_order,
            common_average=self.common_average,
        )


def flint_settings_dict(settings: FlintSettings | None = None) -> dict[str, Any]:
    settings = settings or FlintSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}


def build_flint_recording(raw: FlintSession, settings: FlintSettings) -> PairedRecording:
    """One Subject element's streams on its 10 ms grid, not yet z-scored."""
    t0, t_end = float(raw.times[0]), float(raw.times[-1])
    n_bins = int((t_end - t0) / settings.segment.bin_seconds)  # §6.2 step 2
    grid = np.linspace(t0, t_end, n_bins)  # (n,)
    bin_seconds = float(grid[1] - grid[0])
    lfp = flint_lfp(
        raw.lfp, sampling_rate=LFP_RATE_HZ, n_out=n_bins, settings=settings.lfp_settings()
    )  # (n, C)
    velocity = flint_velocity(raw.times, raw.hand_velocity, grid)  # (n, 2)
    counts = bin_spike_times(
        raw.unit_spike_times, start=t0, bin_seconds=bin_seconds, n_bins=n_bins
    )  # (n, U)
    counts, unit_names = select_units(
        counts, list(raw.unit_names), min_rate_hz=settings.min_rate_hz, bin_seconds=bin_seconds
    )
    return PairedRecording(
        dataset=DATASET,
        session=raw.key,
        times=grid,
        lfp=np.asarray(lfp, dtype=np.float32),
        spikes=counts,
        velocity=np.asarray(velocity, dtype=np.float32),
        channel_names=list(raw.lfp_channel_names),
        unit_names=list(unit_names),
        bin_seconds=bin_seconds,
    )
