"""Per-session linear decoding of velocity from an embeddings file (distillation §9).

Each session gets its own decoder: every 10 ms step of every segment is one row, the OLS map with
intercept is fit on the train rows and scored by R² on the val and test rows pooled. Sessions
are read one at a time, so a 30-session file never sits in memory whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from neuralcli.data.embeddings import SPLITS, EmbeddingsReader, SessionEmbeddings
from neuralcli.errors import DataError
from neuralcli.evaluation.decoding import HELDOUT_SPLITS, TRAIN_SPLIT, decode_splits
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter

TARGETS = ("velocity",)


class SessionDecoding(NamedTuple):
    session: str
    train_r2: float  # R² on the rows the decoder was fit on
    heldout_r2: float  # R² on val + test rows pooled (distillation §9 step 4)
    n_train_rows: int  # 10 ms steps fit on
    n_heldout_rows: int  # 10 ms steps scored
    n_segments: dict[str, int]  # segments per split: train, val, test


@dataclass(frozen=True)
class DecodeReport:
    """One embeddings file decoded: a row per session, in file order."""

    path: Path
    target: str
    attrs: dict[str, Any]  # the embeddings file's root attrs (model, model_kind, dataset, ...)
    sessions: tuple[SessionDecoding, ...]

    @property
    def mean_train_r2(self) -> float:
        return float(np.mean([s.train_r2 for s in self.sessions]))

    @property
    def mean_heldout_r2(self) -> float:
        return float(np.mean([s.heldout_r2 for s in self.sessions]))

    def session(self, name: str) -> SessionDecoding:
        for decoding in self.sessions:
            if decoding.session == name:
                return decoding
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "target": self.target,
            "model": self.attrs.get("model"),
            "model_kind": self.attrs.get("model_kind"),
            "dataset": self.attrs.get("dataset"),
            "sessions": [s._asdict() for s in self.sessions],
            "mean_train_r2": self.mean_train_r2,
            "mean_heldout_r2": self.mean_heldout_r2,
        }


def decode_embeddings(
    path: str | os.PathLike,
    *,
    target: str = "velocity",
    sessions: Sequence[str] | None = None,
    reporter: ProgressReporter | None = None,
) -> DecodeReport:
    """Fit and score one OLS velocity decoder per session of an embeddings file.

    sessions: names to decode (all, in file order, when None). Raises DataError for an unknown
    target or session, a session without velocity, and a session lacking train or val/test rows.
    """
    if target not in TARGETS:
        raise DataError(
            f"unknown decoding target {target!r}; the only target is {', '.join(TARGETS)}"
        )
    reporter = reporter or SilentReporter()
    with EmbeddingsReader(path) as reader:
        names = reader.select(sessions)
        if not names:
            raise DataError(
                f"{reader.path} holds no sessions; write it again with `neuralcli infer`"
            )
        missing = [name for name in names if not reader.has_velocity(name)]
        if missing:
            raise DataError(
                f"{reader.path} holds embeddings without velocity (sessions: "
                f"{', '.join(missing)}); encode a dataset with velocity to decode it"
            )
        for name in names:  # split columns are small: fail on them before any heavy read
            _count_segments(reader.split(name), f"{reader.path}: session {name!r}")
        reporter.start("decode", total=len(names))
        rows = []
        for done, name in enumerate(names, start=1):
            rows.append(_decode_session(reader.read(name), reader.path))
            reporter.update("decode", done, session=name, r2=rows[-1].heldout_r2)
        reporter.finish("decode")
        return DecodeReport(
            path=reader.path, target=target, attrs=dict(reader.attrs), sessions=tuple(rows)
        )


def _decode_session(data: SessionEmbeddings, path: Path) -> SessionDecoding:
    n, length, dim = data.embeddings.shape
    where = f"{path}: session {data.session!r}"
    counts = _count_segments(data.split, where)
    features = data.embeddings.reshape(n * length, dim)  # (n·T, d): rows are 10 ms steps
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).sum())
        raise DataError(
            f"{where} has {bad} non-finite embedding values; encode it again in fp32 "
            "(fp16 can overflow)"
        )
    targets = data.velocity.reshape(n * length, 2)  # (n·T, 2)
    labels = np.repeat(data.split, length)  # (n·T,): each step inherits its segment's split
    try:
        result = decode_splits(features, targets, labels)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None
    return SessionDecoding(
        session=data.session,
        train_r2=result.train_r2,
        heldout_r2=result.heldout_r2,
        n_train_rows=result.n_train,
        n_heldout_rows=result.n_heldout,
        n_segments=counts,
    )


def _count_segments(split: np.ndarray, where: str) -> dict[str, int]:
    """Segments per split; DataError unless there are train and val/test segments."""
    counts = {name: int((split == name).sum()) for name in SPLITS}
    if counts[TRAIN_SPLIT] == 0 or sum(counts[name] for name in HELDOUT_SPLITS) == 0:
        lacking = "train" if counts[TRAIN_SPLIT] == 0 else "val or test"
        found = ", ".join(f"{count} {name}" for name, count in counts.items())
        raise DataError(
            f"{where} has no {lacking} segments ({found}); decoding fits on train and scores on "
            "val+test, so encode every split of the session"
        )
    return counts
