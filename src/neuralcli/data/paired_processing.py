"""What every paired dataset does after its own reader: z-score, segment, store.

    raw PairedRecording (not z-scored) -> z-score (session or train statistics)
        -> 10 s parents, split, 5 s halves (data/segment.py)
        -> <home>/processed/<dataset>/<settings-hash>/<session>.h5 + settings.yaml

A processed folder collects sessions over several `data segment` runs with the same
settings: each session file is written atomically, and settings.yaml is written after the
first one (its presence marks the folder usable; see data/store.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.paired import write_paired_session
from neuralcli.data.preprocess.kinematics import zscore_in_place
from neuralcli.data.recording import PairedRecording
from neuralcli.data.segment import SegmentedSession, SegmentSettings, segment_recording
from neuralcli.data.store import SETTINGS_FILE, processed_dir, write_settings

ZSCORE_STATISTICS = ("session", "train")


def normalise_and_segment(
    raw: PairedRecording, segment: SegmentSettings, *, zscore_statistics: str = "session"
) -> SegmentedSession:
    """Z-score LFP and velocity per column, then cut into segments with split labels.

    "session" uses the whole kept session's statistics, as the original pipeline does
    (data-sources §10 quirk 6); "train" then re-standardises with the statistics of the train
    segments only, so nothing of the val/test segments leaks into the inputs. Both modes keep
    the same segments: the segmentation (and Flint's outlier filter, which looks at velocity)
    runs on the session-z-scored streams, and z-scoring is affine, so z-scoring the z-scored
    train rows equals z-scoring the raw ones.

    Consumes `raw`: its LFP and velocity are z-scored in place, so a long session is never
    held twice at full size (peak memory of `data segment` must not grow with its length).
    """
    if zscore_statistics not in ZSCORE_STATISTICS:
        raise ValueError(
            f"zscore_statistics must be one of {ZSCORE_STATISTICS}, got {zscore_statistics!r}"
        )
    raw.check()
    for values in (raw.lfp, raw.velocity):
        zscore_in_place(values)
    segmented = segment_recording(raw, segment)
    if zscore_statistics == "train":
        train = np.flatnonzero(segmented.segments["split"] == "train")
        for values in (segmented.lfp, segmented.velocity):
            flat = values.reshape(-1, values.shape[-1])  # (n_seg * L, C), a view
            length = values.shape[1]
            rows = (train[:, None] * length + np.arange(length)[None, :]).ravel()
            zscore_in_place(flat, rows=rows if rows.size else None)
    return segmented


def session_file(directory: str | os.PathLike, session: str) -> Path:
    """<directory>/<session>.h5."""
    return Path(directory) / f"{session}.h5"


def store_session(
    home: str | os.PathLike,
    dataset: str,
    settings: Mapping[str, Any],
    segmented: SegmentedSession,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write one session file into the settings' processed folder; returns its path."""
    directory = processed_dir(home, dataset, settings)
    path = write_paired_session(
        session_file(directory, segmented.session),
        segmented,
        attrs=attrs,
    )
    if not (directory / SETTINGS_FILE).is_file():
        write_settings(directory, settings)
    return path


def is_stored(
    home: str | os.PathLike, dataset: str, settings: Mapping[str, Any], session: str
) -> bool:
    """True when the session file and the folder's settings.yaml both exist."""
    directory = processed_dir(home, dataset, settings)
    return (directory / SETTINGS_FILE).is_file() and session_file(directory, session).is_file()
