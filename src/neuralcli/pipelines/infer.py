"""`neuralcli infer`: per-time-step embeddings of every segment of paired sessions (§9 step 1).

Any trained distillation model encodes: the spike teacher reads the spikes, LFP models
(MS-LFP, distilled students) read the LFP. Each data session is tokenized with a space
embedding of the model's vocabulary:
- a single-table model (a distilled student) uses its one table for every session (§3.5);
- `as_session` forces one vocabulary session for all data sessions (the Fig. 5 protocol, §10);
- otherwise the data session's own table, which must exist (else: fine-tune, or as_session).
A table covers a fixed channel count; a data session with another count is refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralcli.data.embeddings import EmbeddingWriter
from neuralcli.data.paired import PairedDataset, collate_paired
from neuralcli.data.registry import parse_session_ref
from neuralcli.data.store import SessionReader
from neuralcli.errors import DataError
from neuralcli.models.lfp_encoder import LfpEncoder
from neuralcli.models.spike_teacher import SpikeTeacher
from neuralcli.pipelines.paired_data import session_files
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.runtime.checkpoint import read_model_meta
from neuralcli.runtime.device import Runtime

MODEL_CLASSES: dict[str, type] = {SpikeTeacher.kind: SpikeTeacher, LfpEncoder.kind: LfpEncoder}


@dataclass
class InferredSession:
    session: str
    as_session: str | None  # the vocabulary session used, when not the data's own
    n_segments: int
    seconds: float


@dataclass
class InferResult:
    out: Path
    model: Path
    model_kind: str
    dim: int
    sessions: list[InferredSession] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "model": str(self.model),
            "model_kind": self.model_kind,
            "dim": self.dim,
            "sessions": [vars(s) for s in self.sessions],
        }


def load_encoder(
    ref: str | os.PathLike, home: Path, device: torch.device
) -> tuple[nn.Module, Path]:
    """The distillation model of run `ref` (teacher or LFP encoder), in eval mode on `device`."""
    run_dir = resolve_run_dir(ref, home)
    kind = read_model_meta(run_dir).get("kind")
    if kind not in MODEL_CLASSES:
        raise DataError(
            f"{run_dir} holds a {kind!r} model; `infer` encodes with a spike teacher or an LFP "
            f"model ({', '.join(MODEL_CLASSES)})"
        )
    return MODEL_CLASSES[kind].from_pretrained(run_dir, device=device).eval(), run_dir


def infer_embeddings(
    model_ref: str | os.PathLike,
    data: str,
    out: str | os.PathLike,
    *,
    home: Path,
    runtime: Runtime,
    sessions: Sequence[str] | None = None,
    as_session: str | None = None,
    batch_size: int = 64,
    embedding_dtype: str = "float32",
    reporter: ProgressReporter | None = None,
) -> InferResult:
    """Encode every segment (all splits) of the sessions of `data` and write `out` (HDF5).

    data: "dataset" (every session on disk, or `sessions`) or "dataset:session".
    """
    reporter = reporter or SilentReporter()
    if batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {batch_size}")
    dataset, session = parse_session_ref(data)
    if session is not None and sessions:
        raise DataError(f"--data {data} names a session; drop --sessions or use --data {dataset}")
    refs = [session] if session is not None else (list(sessions) if sessions else None)
    files = session_files(home, dataset, refs, reporter=reporter)
    model, run_dir = load_encoder(model_ref, home, runtime.device)
    plan = {name: _vocabulary_session(model, run_dir, name, as_session) for name in files}
    for name, path in files.items():
        _check_counts(model, run_dir, name, path, plan[name])
    result = InferResult(
        out=Path(out), model=run_dir, model_kind=model.kind, dim=model.config.d_model
    )
    attrs = {
        "model": str(run_dir),
        "model_kind": model.kind,
        "dataset": dataset,
        "bin_seconds": _attr(next(iter(files.values())), "bin_seconds"),
        "settings_hash": next(iter(files.values())).parent.name,
    }
    reporter.start("encode", sum(_n_segments(path) for path in files.values()))
    done = 0
    with EmbeddingWriter(out, attrs=attrs, embedding_dtype=embedding_dtype) as writer:
        for name, path in files.items():
            started = time.perf_counter()
            vocabulary_session = plan[name]
            used = vocabulary_session if vocabulary_session != name else None
            n = _encode_session(
                model, path, name, vocabulary_session, used, writer, batch_size, runtime
            )
            done += n
            reporter.update("encode", done, session=name)
            seconds = time.perf_counter() - started
            result.sessions.append(InferredSession(name, used, n, seconds))
    reporter.finish("encode")
    return result


def _vocabulary_session(
    model: nn.Module, run_dir: Path, session: str, as_session: str | None
) -> str:
    vocabulary = list(model.sessions)
    if as_session is not None:
        if as_session not in vocabulary:
            raise DataError(
                f"--as-session {as_session}: {run_dir.name} has no such session (its sessions: "
                f"{', '.join(vocabulary)})"
            )
        return as_session
    if len(vocabulary) == 1:
        return vocabulary[0]  # distillation §3.5: a single table serves every session
    if session not in vocabulary:
        raise DataError(
            f"{run_dir.name} has no space embedding for session {session} (its sessions: "
            f"{', '.join(vocabulary)}); pass --as-session <one of them> or fine-tune the model on "
            f"{session} (`neuralcli train student|teacher --set finetune.from_run={run_dir.name}`)"
        )
    return session


def _check_counts(model: nn.Module, run_dir: Path, session: str, path: Path, used: str) -> None:
    modality = "spikes" if model.kind == SpikeTeacher.kind else "lfp"
    with SessionReader(path) as reader:
        shape = reader.shape(modality)
    count = int(shape[-1])
    expected = model.channel_counts[list(model.sessions).index(used)]
    what = "units" if modality == "spikes" else "LFP channels"
    if modality == "spikes" and count == 0:
        raise DataError(f"session {session} has no units; the spike teacher cannot encode it")
    if count != expected:
        raise DataError(
            f"session {session} has {count} {what} but {run_dir.name}'s table for {used} was "
            f"trained on {expected}; use a model (or --as-session) made for this channel layout"
        )


def _encode_session(
    model: nn.Module,
    path: Path,
    name: str,
    vocabulary_session: str,
    as_session: str | None,
    writer: EmbeddingWriter,
    batch_size: int,
    runtime: Runtime,
) -> int:
    data = PairedDataset([path], split=None, sessions=[name])
    with SessionReader(path) as reader:
        segments = reader.segments
    n = len(data)
    length = int(data.segment_bins)
    handle = writer.open_session(
        name,
        n_segments=n,
        length=length,
        dim=model.config.d_model,
        has_velocity=True,
        has_start_time="start_time" in segments,
        as_session=as_session,
    )
    index = torch.tensor([list(model.sessions).index(vocabulary_session)], dtype=torch.int64)
    try:
        for first in range(0, n, batch_size):
            rows = np.arange(first, min(first + batch_size, n))
            batch = collate_paired(data.items(rows))
            inputs = batch.spikes if model.kind == SpikeTeacher.kind else batch.lfp
            counts = batch.n_units if model.kind == SpikeTeacher.kind else batch.n_channels
            device = runtime.device
            with torch.no_grad(), runtime.autocast():
                embeddings = model.encode(
                    inputs.to(device), index.expand(len(rows)).to(device), counts.to(device)
                )  # (b, T, d)
            handle.write(
                embeddings.float().cpu().numpy(),
                segment_id=data.item_segment_ids[rows],
                split=segments["split"][rows],
                velocity=batch.velocity.numpy(),
                start_time=segments["start_time"][rows] if "start_time" in segments else None,
            )
    finally:
        data.close()
    return n


def _n_segments(path: Path) -> int:
    with SessionReader(path) as reader:
        return int(reader.shape("lfp")[0])


def _attr(path: Path, name: str) -> Any:
    with SessionReader(path) as reader:
        return reader.attrs.get(name)
