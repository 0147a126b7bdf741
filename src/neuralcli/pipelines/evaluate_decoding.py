"""`neuralcli evaluate decoding`: the Fig. 5 comparison of several models on the same sessions.

Every model encodes every session (`infer`), one OLS decoder per (model, session) is fit on the
train steps and scored on val+test (`decode`), and the first model is the baseline the others
are compared with (distillation §9–§10). The embeddings files are kept in the output folder
beside the table (decoding.json) and the paired per-session plot (decoding.png).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuralcli.errors import DataError
from neuralcli.evaluation.decoding_report import (
    DecodingComparison,
    compare_decoding,
    comparison_rows,
    plot_decoding_comparison,
    summary_rows,
)
from neuralcli.pipelines.decode import DecodeReport, decode_embeddings
from neuralcli.pipelines.infer import infer_embeddings
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.files import atomic_write_text


@dataclass
class DecodingEvaluation:
    comparison: DecodingComparison
    reports: dict[str, DecodeReport]  # model label -> its per-session decoding
    embeddings: dict[str, Path]  # model label -> its embeddings file
    out_dir: Path
    plot: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "plot": str(self.plot),
            "baseline": self.comparison.baseline,
            "models": list(self.comparison.models),
            "sessions": comparison_rows(self.comparison),
            "summary": summary_rows(self.comparison),
            "embeddings": {label: str(path) for label, path in self.embeddings.items()},
        }


def evaluate_decoding(
    models: Sequence[str],
    data: str,
    *,
    home: Path,
    runtime: Runtime,
    sessions: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    reporter: ProgressReporter | None = None,
) -> DecodingEvaluation:
    """Encode, decode and compare. `data` is a paired dataset name; `sessions` its sessions
    (all on disk when None). The first model is the baseline."""
    reporter = reporter or SilentReporter()
    if len(models) < 1:
        raise DataError("--models names no model; give one or more runs, comma-separated")
    run_dirs = [resolve_run_dir(model, home) for model in models]
    labels = [run_dir.name for run_dir in run_dirs]
    if len(set(labels)) != len(labels):
        raise DataError(f"--models lists the same run twice: {', '.join(labels)}")
    out = Path(out_dir) if out_dir is not None else home / "evaluations" / "decoding"
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, DecodeReport] = {}
    files: dict[str, Path] = {}
    for label, run_dir in zip(labels, run_dirs, strict=True):
        reporter.message(f"encoding {data} with {label}")
        files[label] = out / f"{label}.h5"
        infer_embeddings(
            run_dir,
            data,
            files[label],
            home=home,
            runtime=runtime,
            sessions=sessions,
            batch_size=batch_size,
            reporter=reporter,
        )
        reports[label] = decode_embeddings(files[label], reporter=reporter)
    comparison = compare_decoding(reports, baseline=labels[0])
    plot = plot_decoding_comparison(comparison, out / "decoding.png")
    evaluation = DecodingEvaluation(comparison, reports, files, out, plot)
    atomic_write_text(out / "decoding.json", json.dumps(evaluation.to_dict(), indent=2) + "\n")
    return evaluation
