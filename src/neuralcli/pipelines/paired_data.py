"""Finding the paired session files a distillation stage reads.

Sessions are named by their file stem in a dataset's processed folder ("20160622_01", "e1_1",
"s04"), optionally prefixed by another paired dataset ("flint:e2_1"). The synthetic-reach
dataset is simulated on first use, like Lorenz; downloaded datasets must be segmented first.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from neuralcli.data.paired import PairedDataset
from neuralcli.data.registry import get_dataset, resolve_variant
from neuralcli.data.store import find_processed
from neuralcli.errors import DataError
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.segment import prepare_synthetic_reach

SYNTHETIC = "synthetic-reach"


def split_session_ref(ref: str, default_dataset: str) -> tuple[str, str]:
    """'flint:e2_1' -> ('flint', 'e2_1'); 's04' -> (default_dataset, 's04')."""
    dataset, sep, name = ref.strip().partition(":")
    if not sep:
        return default_dataset, dataset
    get_dataset(dataset)
    if not name:
        raise DataError(f"session {ref!r} names no session; use e.g. {dataset}:<session>")
    return dataset, name


def dataset_session_files(
    home: Path, dataset: str, *, reporter: ProgressReporter | None = None
) -> dict[str, Path]:
    """Every stored session of `dataset`'s default (or only) processed variant, by name.

    synthetic-reach is simulated with its default settings when no variant of it is on disk;
    a variant made with other settings (`data fetch synthetic-reach --set ...`) is used as is.
    """
    reporter = reporter or SilentReporter()
    info = get_dataset(dataset)
    if info.layout != "paired":
        raise DataError(
            f"dataset {dataset!r} holds trials, not paired spike/LFP sessions; use makin, flint "
            "or synthetic-reach"
        )
    if dataset == SYNTHETIC and not find_processed(home, dataset, remedy=info.remedy):
        reporter.message("simulating the synthetic-reach sessions (first use)")
        prepare_synthetic_reach(home, reporter=reporter)
    variant = resolve_variant(home, dataset)
    return {path.stem: path for path in variant.files}


def session_files(
    home: Path,
    dataset: str,
    sessions: Sequence[str] | None,
    *,
    reporter: ProgressReporter | None = None,
) -> dict[str, Path]:
    """The file of each session in `sessions` (all of `dataset` when None), in that order."""
    if sessions is None:
        files = dataset_session_files(home, dataset, reporter=reporter)
        if not files:
            raise DataError(f"no {dataset} session is segmented under {home}")
        return files
    catalogues: dict[str, dict[str, Path]] = {}
    chosen: dict[str, Path] = {}
    for ref in sessions:
        source, name = split_session_ref(ref, dataset)
        if source not in catalogues:
            catalogues[source] = dataset_session_files(home, source, reporter=reporter)
        available = catalogues[source]
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise DataError(
                f"{source} session {name!r} is not segmented under {home}; {hint}run "
                f"`neuralcli data segment {source} --sessions {name}` (present: "
                f"{', '.join(sorted(available)) or 'none'})"
            )
        if name in chosen:
            raise DataError(f"session {name!r} is listed twice")
        chosen[name] = available[name]
    return chosen


def open_paired(files: dict[str, Path], split: str | None) -> PairedDataset:
    """PairedDataset over `files` (name -> path) with sessions in that order."""
    return PairedDataset(list(files.values()), split=split, sessions=list(files))


def session_counts(dataset: PairedDataset, modality: str) -> dict[str, int]:
    """Channel (modality "lfp") or unit ("spikes") count of every session of `dataset`."""
    names = dataset.channel_names if modality == "lfp" else dataset.unit_names
    return {session: len(columns) for session, columns in zip(dataset.sessions, names, strict=True)}


def session_map(dataset_sessions: Sequence[str], vocabulary: Sequence[str]) -> torch.Tensor:
    """(n_dataset_sessions,) int64: each dataset session's index in a model vocabulary."""
    index = {name: i for i, name in enumerate(vocabulary)}
    missing = [name for name in dataset_sessions if name not in index]
    if missing:
        raise DataError(f"sessions {missing} are not in the model's vocabulary")
    return torch.as_tensor(np.array([index[name] for name in dataset_sessions], dtype=np.int64))
