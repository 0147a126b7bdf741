"""`neuralcli evaluate samples --bootstrap N`: the Table-1 protocol of LDNS (§11.2) for
several sample sets against one reference, with the data-vs-data row and, for MC_Maze
training trials, the published rows (§13.1)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.errors import ConfigError
from neuralcli.evaluation.condition_plots import plot_condition_rates
from neuralcli.evaluation.plots import plot_comparison
from neuralcli.evaluation.table1 import (
    DATA_VS_DATA,
    TABLE1_METRICS,
    Table1,
    bootstrap_table,
    published_table1_rows,
)
from neuralcli.pipelines.data import LoadedSpikes, load_spikes
from neuralcli.pipelines.evaluate import check_compatible
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.runtime.checkpoint import write_json

PSTH_SIGMA_SECONDS = 0.03  # LDNS §11.3: spikes smoothed with a σ = 30 ms Gaussian
PSTH_NEURONS = 4  # panels of the per-condition mean-rate plot
PUBLISHED_DATASET = "mc_maze"  # the published Table 1 is for MC_Maze training trials (§13.1)


@dataclass
class Table1Evaluation:
    """Table 1 of LDNS (§11.2) for the given sample sets against one reference.

    methods: label -> where its spikes came from; published: whether the published rows
    (§13.1) are part of the report; files: table1.json and the plots written under --out.
    """

    real: str
    methods: dict[str, str]
    table: Table1
    published: bool
    files: list[Path] = field(default_factory=list)
    report_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        table = self.table
        return {
            "real": self.real,
            "n_reference": table.n_reference,
            "n_bootstraps": table.n_bootstraps,
            "seed": table.seed,
            "bin_seconds": table.bin_seconds,
            "max_count": table.max_count,
            "isi_quirk": table.isi_quirk,
            "metrics": list(TABLE1_METRICS),
            "methods": [
                {"method": label, "source": source} for label, source in self.methods.items()
            ],
            "rows": [
                {
                    "method": row.method,
                    "n_trials": row.n_trials,
                    "mean": row.mean,
                    "std": row.std,
                    "bootstraps": [run.to_dict() for run in row.runs],
                }
                for row in table.rows
            ],
            "published": published_table1_rows() if self.published else None,
            "files": [str(path) for path in self.files],
            "report": str(self.report_path) if self.report_path else None,
        }


def method_label(loaded: LoadedSpikes) -> str:
    """A method's row name: the file's stem, or the generating run's name for a file that
    `neuralcli sample` named samples.npz (a run directory passed as --samples included)."""
    if loaded.origin is None:
        return loaded.label
    if loaded.origin.stem == "samples":
        run = loaded.metadata.get("run")
        return Path(run).name if run else loaded.origin.parent.name
    return loaded.origin.stem


def _unique(label: str, taken: set[str]) -> str:
    candidate, number = label, 1
    while candidate in taken or candidate == DATA_VS_DATA:
        number += 1
        candidate = f"{label} ({number})"
    return candidate


def is_published_reference(real: str | Path) -> bool:
    """Whether `real` is the published Table 1's reference: MC_Maze training trials (§11.2)."""
    text = str(real)
    return text == f"{PUBLISHED_DATASET}:train" and not Path(text).exists()


def evaluate_table1(
    samples: Sequence[str | Path],
    real: str | Path,
    *,
    home: Path,
    n_bootstraps: int = 5,
    seed: int = 42,
    out_dir: Path | None = None,
    make_plots: bool = True,
    published: bool | None = None,
    reporter: ProgressReporter | None = None,
) -> Table1Evaluation:
    """The Table-1 protocol of LDNS §11.2 for every sample set in `samples` against `real`.

    Each method's bootstrap resamples (index sets shared by the methods, drawn after seeding
    `seed`) are compared with the full reference; the data-vs-data row is the noise floor.
    published: add the published rows (§13.1); None adds them when `real` is mc_maze:train.
    out_dir: write table1.json there, and with make_plots per method a folder of
    real-vs-sampled figures (rasters, statistics) plus, when the samples and the reference
    carry reach angles, the per-condition mean rates (condition_rates.png).
    """
    reporter = reporter or SilentReporter()
    if isinstance(n_bootstraps, bool) or n_bootstraps < 1:
        raise ConfigError(f"--bootstrap {n_bootstraps}: draw at least 1 bootstrap set")
    if not samples:
        raise ConfigError("no --samples given: pass one or more sample files")
    loaded: dict[str, LoadedSpikes] = {}
    for ref in samples:
        model = load_spikes(ref, home)
        loaded[_unique(method_label(model), set(loaded))] = model
    first = next(iter(loaded.values()))
    data = load_spikes(real, home, prefer_data=first.metadata.get("data"))
    for model in loaded.values():
        check_compatible(model, data)
    bin_seconds = data.bin_seconds or first.bin_seconds or 1.0

    reporter.message(
        f"Table 1: {len(loaded)} method(s) vs {data.spikes.shape[0]} real trials, "
        f"{n_bootstraps} bootstrap sets"
    )
    table = bootstrap_table(
        data.spikes,
        {label: model.spikes for label, model in loaded.items()},
        n_bootstraps=n_bootstraps,
        seed=seed,
        bin_seconds=bin_seconds,
    )
    evaluation = Table1Evaluation(
        real=data.label,
        methods={label: model.label for label, model in loaded.items()},
        table=table,
        published=is_published_reference(real) if published is None else published,
    )
    if out_dir is None:
        return evaluation
    out_dir = Path(out_dir)
    if make_plots:
        for label, model in loaded.items():
            evaluation.files.extend(_method_plots(label, model, data, out_dir, bin_seconds))
    evaluation.report_path = out_dir / "table1.json"
    evaluation.files.insert(0, evaluation.report_path)
    write_json(evaluation.report_path, evaluation.to_dict())
    return evaluation


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "method"


def _method_plots(
    label: str, model: LoadedSpikes, data: LoadedSpikes, out_dir: Path, bin_seconds: float
) -> list[Path]:
    folder = out_dir / _slug(label)
    written = plot_comparison(
        model.spikes, data.spikes, folder, bin_seconds=bin_seconds, title_prefix=f"{label}: "
    )
    if model.conditions.angle is not None and data.conditions.angle is not None:
        written.append(
            _condition_rates_plot(model, data, folder / "condition_rates.png", bin_seconds)
        )
    return written


def _condition_rates_plot(
    model: LoadedSpikes, data: LoadedSpikes, path: Path, bin_seconds: float
) -> Path:
    """PSTH-like plot: both sides' spikes smoothed alike (σ = 30 ms, §11.3) and averaged per
    reach-angle sector; only the most active real neurons are smoothed, to keep memory small."""
    from scipy.ndimage import gaussian_filter1d

    neurons = np.argsort(data.spikes.mean(axis=(0, 1)))[::-1][:PSTH_NEURONS]  # (k,)
    sigma_bins = PSTH_SIGMA_SECONDS / bin_seconds if bin_seconds < 1.0 else 1.0

    def smoothed(spikes: np.ndarray) -> np.ndarray:
        chosen = spikes[:, :, neurons].astype(np.float32)  # (n, T, k)
        return gaussian_filter1d(chosen, sigma_bins, axis=1, mode="nearest")

    return plot_condition_rates(
        smoothed(data.spikes),
        data.conditions.angle,
        smoothed(model.spikes),
        model.conditions.angle,
        path,
        neurons=list(range(neurons.size)),
        neuron_labels=[int(n) for n in neurons],
        bin_seconds=bin_seconds,
    )
