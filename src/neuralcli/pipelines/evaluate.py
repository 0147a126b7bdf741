"""`neuralcli evaluate samples`: spike statistics of sampled against real spike trains
(LDNS §11), next to the data-vs-data floor and an independent-Poisson baseline. The Table-1
bootstrap protocol (§11.2) is in pipelines/evaluate_table1.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.errors import DataError
from neuralcli.evaluation.baselines import independent_poisson
from neuralcli.evaluation.plots import plot_comparison
from neuralcli.evaluation.spike_stats import (
    METRIC_NAMES,
    compare_spikes,
    noise_floor,
    trial_statistics,
)
from neuralcli.pipelines.data import LoadedSpikes, load_spikes
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.runtime.checkpoint import write_json

METRICS = METRIC_NAMES  # the nine statistics, in the order tables show them


@dataclass
class EvaluationResult:
    samples: str
    real: str
    n_samples: int
    n_real: int
    bin_seconds: float
    metrics: dict[str, float]
    floor: dict[str, float]
    poisson_baseline: dict[str, float]
    plots: list[Path] = field(default_factory=list)
    report_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "real": self.real,
            "n_samples": self.n_samples,
            "n_real": self.n_real,
            "bin_seconds": self.bin_seconds,
            **self.metrics,
            "floor": self.floor,
            "poisson_baseline": self.poisson_baseline,
            "plots": [str(p) for p in self.plots],
            "report": str(self.report_path) if self.report_path else None,
        }


def _pick(comparison: Any) -> dict[str, float]:
    values = comparison.to_dict()
    return {key: float(values[key]) for key in METRICS}


def evaluate_samples(
    samples: str | Path,
    real: str | Path,
    *,
    home: Path,
    seed: int = 42,
    plots_dir: Path | None = None,
    make_plots: bool = True,
    report_path: Path | None = None,
    out_dir: Path | None = None,
    reporter: ProgressReporter | None = None,
) -> EvaluationResult:
    """Compare `samples` with `real` (each an .npz/.nwb file, a run directory or a dataset
    split such as `lorenz:test`), with the data-vs-data floor and an independent-Poisson
    baseline; writes evaluation.json and plots/ into `out_dir` (default: next to the
    samples) unless `report_path` / `plots_dir` say otherwise."""
    reporter = reporter or SilentReporter()
    model = load_spikes(samples, home)
    data = load_spikes(real, home, prefer_data=model.metadata.get("data"))
    check_compatible(model, data)
    bin_seconds = data.bin_seconds or model.bin_seconds or 1.0

    reporter.message(
        f"comparing {model.spikes.shape[0]} sampled with {data.spikes.shape[0]} real trials"
    )
    data_stats = trial_statistics(data.spikes, bin_seconds=bin_seconds)  # one pass over the data
    metrics = _pick(compare_spikes(model.spikes, data_stats, bin_seconds=bin_seconds))
    floor = _pick(noise_floor(data_stats, bin_seconds=bin_seconds, seed=seed))
    baseline_spikes = independent_poisson(data.spikes, n_trials=model.spikes.shape[0], seed=seed)
    baseline = _pick(compare_spikes(baseline_spikes, data_stats, bin_seconds=bin_seconds))

    default_dir = out_dir or (
        model.origin.parent if model.origin is not None else home / "evaluation"
    )
    plots: list[Path] = []
    if make_plots:
        plots = plot_comparison(
            model.spikes, data.spikes, plots_dir or default_dir / "plots", bin_seconds=bin_seconds
        )
    result = EvaluationResult(
        samples=model.label,
        real=data.label,
        n_samples=int(model.spikes.shape[0]),
        n_real=int(data.spikes.shape[0]),
        bin_seconds=float(bin_seconds),
        metrics=metrics,
        floor=floor,
        poisson_baseline=baseline,
        plots=plots,
    )
    result.report_path = report_path or default_dir / "evaluation.json"
    write_json(result.report_path, result.to_dict())
    return result


def check_compatible(model: LoadedSpikes, data: LoadedSpikes) -> None:
    if model.spikes.shape[-1] != data.spikes.shape[-1]:
        raise DataError(
            f"{model.label} has {model.spikes.shape[-1]} neurons but {data.label} has "
            f"{data.spikes.shape[-1]}; compare spike trains of the same population"
        )
    if (
        model.bin_seconds is not None
        and data.bin_seconds is not None
        and not np.isclose(model.bin_seconds, data.bin_seconds)
    ):
        raise DataError(
            f"bin widths differ: {model.label} {model.bin_seconds} s vs {data.label} "
            f"{data.bin_seconds} s; rebin one of them"
        )
