"""`neuralcli evaluate samples`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neuralcli.cli.common import RichReporter, emit, handle_errors, options
from neuralcli.pipelines.evaluate import METRICS, EvaluationResult, evaluate_samples

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
