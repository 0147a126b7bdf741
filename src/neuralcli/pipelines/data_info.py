"""`neuralcli data info`: what one processed paired session (or every session) holds.

Besides shapes and split counts it reports how well a linear decoder reads velocity from
the session's spikes and from its LFP (distillation §9 protocol: OLS fit on train rows,
R² on val+test rows), the gap the distillation method exploits.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.paired import read_paired_summary
from neuralcli.data.registry import get_dataset, parse_session_ref, resolve_variant
from neuralcli.data.sources.flint_remote import check_flint_sessions
from neuralcli.data.sources.makin_remote import check_sessions
from neuralcli.data.store import ProcessedVariant, find_processed, open_session, settings_hash
from neuralcli.errors import DataError
from neuralcli.evaluation.decoding import decode_splits, smooth_counts

SPIKE_SMOOTHING_BINS = 5.0  # Gaussian sigma for spike features: 50 ms at 10 ms bins
# Datasets with a fixed list of sessions: name -> validator returning canonical names.
_CATALOGUES = {"makin": check_sessions, "flint": check_flint_sessions}


@dataclass
class SessionInfo:
    dataset: str
    session: str
    settings_hash: str
    path: Path
    n_channels: int
    n_units: int
    duration_seconds: float  # of the stored segments
    n_segments: dict[str, int]  # per split
    channel_names: list[str]
    spikes_r2: float | None  # val+test R² of velocity from smoothed spikes; None: no units
    lfp_r2: float | None  # val+test R² of velocity from the LFP; None: no LFP channels

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "path": str(self.path)}


def data_info(home: str | os.PathLike, ref: str, *, decoding: bool = True) -> list[SessionInfo]:
    """Info on `dataset:session`, or on every session of the dataset's processed variant."""
    home = Path(home)
    dataset, session = parse_session_ref(ref)
    info = get_dataset(dataset)
    if info.layout != "paired":
        raise DataError(
            f"`data info` describes paired datasets (makin, flint, synthetic-reach); "
            f"use `neuralcli data list {dataset}` for {dataset}"
        )
    if session is None:
        variant = resolve_variant(home, dataset)
        return [_session_info(dataset, variant.hash, path, decoding) for path in variant.files]
    variant, path = _find_session(home, dataset, session)
    return [_session_info(dataset, variant.hash, path, decoding)]


def _find_session(home: Path, dataset: str, session: str) -> tuple[ProcessedVariant, Path]:
    """The session's file: in the default-settings variant if there, else the newest one."""
    catalogue = _CATALOGUES.get(dataset)
    if catalogue is not None:
        (session,) = catalogue([session])  # canonical name; DataError with suggestions
    info = get_dataset(dataset)
    variants = find_processed(home, dataset, remedy=info.remedy)
    default_hash = settings_hash(info.default_settings())
    holding = [v for v in variants if any(p.stem == session for p in v.files)]
    if holding:
        holding.sort(key=lambda v: (v.hash != default_hash, -_mtime(v, session)))
        variant = holding[0]
        return variant, next(p for p in variant.files if p.stem == session)
    if catalogue is not None:
        raise DataError(
            f"{dataset} session {session} is not segmented under {home}; run "
            f"`neuralcli data segment {dataset} --sessions {session}` first"
        )
    present = sorted({p.stem for v in variants for p in v.files})
    close = difflib.get_close_matches(session, present, n=3, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(close)}?" if close else f"present: {', '.join(present) or 'none'}"
    )
    raise DataError(f"unknown {dataset} session {session!r}; {hint}")


def _mtime(variant: ProcessedVariant, session: str) -> float:
    return next(p for p in variant.files if p.stem == session).stat().st_mtime


def _session_info(dataset: str, variant_hash: str, path: Path, decoding: bool) -> SessionInfo:
    summary = read_paired_summary(path)
    spikes_r2 = lfp_r2 = None
    if decoding:
        spikes_r2, lfp_r2 = _decoding_r2(path, get_dataset(dataset).remedy)
    return SessionInfo(
        dataset=dataset,
        session=summary.session,
        settings_hash=variant_hash,
        path=path,
        n_channels=summary.n_channels,
        n_units=summary.n_units,
        duration_seconds=summary.duration_seconds,
        n_segments=dict(summary.n_segments),
        channel_names=list(summary.channel_names),
        spikes_r2=spikes_r2,
        lfp_r2=lfp_r2,
    )


def _decoding_r2(path: Path, remedy: str) -> tuple[float | None, float | None]:
    """Val+test R² of velocity from smoothed spikes and from raw LFP (distillation §9)."""
    with open_session(path, remedy=remedy) as reader:
        split = np.asarray(reader.segments["split"]).astype(str)  # (n_seg,)
        velocity = reader.read("velocity")  # (n_seg, L, 2)
        spikes = reader.read("spikes")  # (n_seg, L, U)
        lfp = reader.read("lfp")  # (n_seg, L, C)
    if not {"train"} <= set(split) or not ({"val", "test"} & set(split)):
        return None, None
    n_seg, length = velocity.shape[:2]
    rows_split = np.repeat(split, length)  # (n_seg * L,)
    targets = velocity.reshape(n_seg * length, 2)
    spikes_r2 = lfp_r2 = None
    if spikes.shape[2]:
        smoothed = np.stack([smooth_counts(segment, SPIKE_SMOOTHING_BINS) for segment in spikes])
        features = smoothed.reshape(n_seg * length, -1)
        spikes_r2 = decode_splits(features, targets, rows_split).heldout_r2
    if lfp.shape[2]:
        lfp_r2 = decode_splits(lfp.reshape(n_seg * length, -1), targets, rows_split).heldout_r2
    return spikes_r2, lfp_r2
