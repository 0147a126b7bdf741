"""One session's paired streams on a common time grid, before segmentation.

Every paired dataset (Makin/O'Doherty, Flint 2012, synthetic-reach) is reduced to a
`PairedRecording` per session; segmentation, splitting and storage work on that alone.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class PairedRecording(NamedTuple):
    """Spikes, LFP and velocity of one session on one grid of `bin_seconds` bins.

    Bin i covers [times[i], times[i] + bin_seconds). Streams are already trimmed to the kept
    part of the session and z-scored as the dataset's recipe says.
    """

    dataset: str  # "makin" | "flint" | "synthetic-reach"
    session: str  # "20160622_01", "e1_1", "s00"
    times: np.ndarray  # (n_bins,) float64 start time of each bin, seconds
    lfp: np.ndarray  # (n_bins, n_channels) float32
    spikes: np.ndarray  # (n_bins, n_units) uint8 counts per bin (saturating at 255)
    velocity: np.ndarray  # (n_bins, 2) float32
    channel_names: list[str]  # (n_channels,)
    unit_names: list[str]  # (n_units,)
    bin_seconds: float  # the grid's actual spacing (Makin: slightly above 10 ms)

    @property
    def n_bins(self) -> int:
        return int(self.times.shape[0])

    def check(self) -> None:
        """ValueError when the streams disagree in length or dtype."""
        n = self.n_bins
        for name in ("lfp", "spikes", "velocity"):
            array = getattr(self, name)
            if array.ndim != 2 or array.shape[0] != n:
                raise ValueError(f"{name} has shape {array.shape}; expected ({n}, ...)")
        if self.velocity.shape[1] != 2:
            raise ValueError(f"velocity has {self.velocity.shape[1]} columns; expected 2")
        if self.spikes.dtype != np.uint8:
            raise ValueError(f"spikes must be uint8 counts, got {self.spikes.dtype}")
        if len(self.channel_names) != self.lfp.shape[1]:
            raise ValueError("channel_names and lfp columns differ in number")
        if len(self.unit_names) != self.spikes.shape[1]:
            raise ValueError("unit_names and spikes columns differ in number")
