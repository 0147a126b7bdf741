"""`neuralcli evaluate samples|decoding`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neuralcli.cli.common import RichReporter, emit, handle_errors, options
from neuralcli.cli.runtime_options import DeviceOption, PrecisionOption, make_runtime
from neuralcli.evaluation.decoding_report import comparison_rows, summary_rows
from neuralcli.pipelines.evaluate import METRICS, EvaluationResult, evaluate_samples
from neuralcli.pipelines.evaluate_decoding import DecodingEvaluation, evaluate_decoding

app = typer.Typer(help="Evaluate models and samples.", no_args_is_help=True)

LOWER_IS_BETTER = {
    "kl_population_count",
    "rmse_correlation",
    "rmse_mean_isi",
    "rmse_std_isi",
    "mean_rate_error",
}


def metrics_table(title: str, result: EvaluationResult, samples_label: str = "samples") -> Table:
    """The nine statistics for the samples, the data-vs-data floor and the Poisson baseline."""
    table = Table(title=f"{title}  (↓ lower is better, ↑ higher)", title_justify="left")
    table.add_column("metric", style="bold")
    for column in (samples_label, "data vs data", "independent Poisson"):
        table.add_column(column, justify="right")
    for key in METRICS:
        arrow = " ↓" if key in LOWER_IS_BETTER else " ↑"
        table.add_row(
            key + arrow,
            f"{result.metrics[key]:.4g}",
            f"{result.floor[key]:.4g}",
            f"{result.poisson_baseline[key]:.4g}",
        )
    return table


@app.command(
    "samples",
    epilog=(
        "Example: neuralcli evaluate samples --samples runs/diffusion-lorenz/samples.npz "
        "--real lorenz:test"
    ),
)
@handle_errors
def samples(
    samples_ref: Annotated[
        str,
        typer.Option(
            "--samples",
            "-s",
            help=".npz/.nwb with spikes (trials, time, neurons), a run, or dataset:split",
        ),
    ],
    real: Annotated[
        str,
        typer.Option(
            "--real", "-r", help="Reference: dataset:split (lorenz:test), .npz/.nwb or run"
        ),
    ] = "lorenz:test",
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Folder for PNG plots [default: beside the samples]"),
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the plots")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="JSON report path [default: beside the samples]")
    ] = None,
) -> None:
    """Compare sampled with real spike trains: population-count KL, correlation, ISI and rate
    errors, Pearson r of each statistic, the data-vs-data floor and a Poisson baseline."""
    with RichReporter() as reporter:
        result = evaluate_samples(
            samples_ref,
            real,
            home=options().home_path,
            seed=options().seed,
            plots_dir=plots,
            make_plots=not no_plots,
            report_path=report,
            reporter=reporter,
        )
    table = metrics_table(f"{result.samples} vs {result.real}", result)
    table.caption = f"report: {result.report_path}" + (
        f"; plots: {result.plots[0].parent}" if result.plots else ""
    )
    emit(result.to_dict(), table)


def decoding_comparison_table(evaluation: DecodingEvaluation) -> Table:
    """Per session (then the means): train and val+test R² of each model, Δ vs the baseline."""
    comparison = evaluation.comparison
    rows = comparison_rows(comparison)
    table = Table(title=f"velocity decoding; baseline {comparison.baseline}", title_justify="left")
    columns = list(rows[0])
    for column in columns:
        table.add_column(column, justify="left" if column in ("session", "group") else "right")
    n_sessions = len(comparison.sessions)
    for index, row in enumerate(rows):
        if index == n_sessions:
            table.add_section()
        table.add_row(*(_cell(row[column]) for column in columns))
    wins = [
        f"{row['model']} beats the baseline on {row['wins']}"
        for row in summary_rows(comparison)
        if row["wins"] is not None and row["group"].startswith("all")
    ]
    table.caption = "; ".join([*wins, f"plot: {evaluation.plot}"])
    return table


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command(
    "decoding",
    epilog=(
        "Example: neuralcli evaluate decoding --models ms-lfp-quick,distilled-s03 "
        "--data synthetic-reach --sessions s04,s05,s06"
    ),
)
@handle_errors
def decoding(
    models: Annotated[
        str,
        typer.Option("--models", help="Comma-separated runs; the first is the baseline"),
    ],
    data: Annotated[
        str, typer.Option("--data", help="Paired dataset: synthetic-reach, makin or flint")
    ] = "synthetic-reach",
    sessions: Annotated[
        str | None,
        typer.Option("--sessions", help="Comma-separated sessions [default: all on disk]"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for embeddings, decoding.json and decoding.png"),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Segments per pass")] = 64,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
) -> None:
    """Fig. 5-style comparison: encode the sessions with every model, fit one OLS velocity
    decoder per model and session on train steps, compare val+test R² per session."""
    runtime = make_runtime(device, precision)
    model_list = [m.strip() for m in models.split(",") if m.strip()]
    names = None if sessions is None else [s.strip() for s in sessions.split(",") if s.strip()]
    with RichReporter() as reporter:
        evaluation = evaluate_decoding(
            model_list,
            data,
            home=options().home_path,
            runtime=runtime,
            sessions=names,
            out_dir=out,
            batch_size=batch_size,
            reporter=reporter,
        )
    emit(evaluation.to_dict(), decoding_comparison_table(evaluation))
