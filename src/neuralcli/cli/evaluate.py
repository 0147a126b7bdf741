"""`neuralcli evaluate samples|behavior|decoding`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neuralcli.cli.common import RichReporter, emit, handle_errors, options
from neuralcli.cli.runtime_options import DeviceOption, PrecisionOption, make_runtime
from neuralcli.errors import ConfigError
from neuralcli.evaluation.decoding_report import comparison_rows, summary_rows
from neuralcli.evaluation.table1 import DATA_VS_DATA, TABLE1_METRICS, published_table1_rows
from neuralcli.pipelines.evaluate import METRICS, EvaluationResult, evaluate_samples
from neuralcli.pipelines.evaluate_behavior import BehaviorEvaluation, evaluate_behavior
from neuralcli.pipelines.evaluate_decoding import DecodingEvaluation, evaluate_decoding
from neuralcli.pipelines.evaluate_table1 import Table1Evaluation, evaluate_table1

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
        "Examples: neuralcli evaluate samples --samples runs/diffusion-lorenz/samples.npz "
        "--real lorenz:test ; neuralcli evaluate samples --samples runs/diffusion-monkey "
        "--samples runs/diffusion-monkey-history --real mc_maze:train --bootstrap 5 --out table1"
    ),
)
@handle_errors
def samples(
    samples_refs: Annotated[
        list[str],
        typer.Option(
            "--samples",
            "-s",
            help=(
                ".npz/.nwb with spikes (trials, time, neurons), a run, or dataset:split; "
                "repeat to compare several methods (with --bootstrap)"
            ),
        ),
    ],
    real: Annotated[
        str,
        typer.Option(
            "--real", "-r", help="Reference: dataset:split (lorenz:test), .npz/.nwb or run"
        ),
    ] = "lorenz:test",
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            help="Table-1 protocol (LDNS §11.2): this many bootstrap sets shared by the methods",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the resampling (default: global --seed)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the JSON report and plots"),
    ] = None,
    published: Annotated[
        bool | None,
        typer.Option(
            "--published/--no-published",
            help="Show the published Table-1 rows (LDNS §13.1) (default: for mc_maze:train)",
        ),
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option("--plots", help="Folder for PNG plots (default: beside the samples)"),
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the plots")] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="JSON report path (default: beside the samples)")
    ] = None,
) -> None:
    """Compare sampled with real spike trains: population-count KL, correlation, ISI and rate
    errors, Pearson r of each statistic, the data-vs-data floor and a Poisson baseline. With
    --bootstrap N: LDNS Table 1 (mean ± std over N resamples of each method against the full
    reference, with the data-vs-data noise floor) for one or more sample sets."""
    seed = options().seed if seed is None else seed
    if bootstrap is not None:
        if plots is not None or report is not None:
            raise ConfigError(
                "--plots and --report are for one comparison; with --bootstrap use --out"
            )
        with RichReporter() as reporter:
            evaluation = evaluate_table1(
                samples_refs,
                real,
                home=options().home_path,
                n_bootstraps=bootstrap,
                seed=seed,
                out_dir=out,
                make_plots=not no_plots,
                published=published,
                reporter=reporter,
            )
        emit(evaluation.to_dict(), table1_table(evaluation))
        return
    if len(samples_refs) != 1:
        raise ConfigError(
            f"{len(samples_refs)} --samples given: comparing several methods needs --bootstrap N"
        )
    with RichReporter() as reporter:
        result = evaluate_samples(
            samples_refs[0],
            real,
            home=options().home_path,
            seed=seed,
            plots_dir=plots,
            make_plots=not no_plots,
            report_path=report,
            out_dir=out,
            reporter=reporter,
        )
    table = metrics_table(f"{result.samples} vs {result.real}", result)
    table.caption = f"report: {result.report_path}" + (
        f"; plots: {result.plots[0].parent}" if result.plots else ""
    )
    emit(result.to_dict(), table)


def table1_table(evaluation: Table1Evaluation) -> Table:
    """LDNS Table 1: each method's mean ± std over the bootstraps, the noise floor, then (for
    MC_Maze) the published rows; the best sampled method per column in bold."""
    result = evaluation.table
    unit = "bins" if result.bin_seconds == 1.0 else "s"
    table = Table(
        title=(
            f"Table 1: samples vs {evaluation.real} ({result.n_reference} trials), mean ± std "
            f"over {result.n_bootstraps} bootstraps, seed {result.seed}  (↓ lower is better)"
        ),
        title_justify="left",
    )
    table.add_column("method", style="bold")
    table.add_column("trials", justify="right")
    for label in TABLE1_METRICS.values():
        table.add_column(f"{label} ({unit}) ↓" if "ISI" in label else f"{label} ↓", justify="right")
    methods = [row for row in result.rows if row.method != DATA_VS_DATA]
    best = {
        name: min(row.mean[name] for row in methods) if len(methods) > 1 else None
        for name in TABLE1_METRICS
    }
    for row in result.rows:
        if row.method == DATA_VS_DATA:
            table.add_section()
        cells = []
        for name in TABLE1_METRICS:
            cell = _mean_std(row.mean[name], row.std[name])
            if row.method != DATA_VS_DATA and row.mean[name] == best[name]:
                cell = f"[bold green]{cell}[/]"
            cells.append(cell)
        table.add_row(row.method, str(row.n_trials), *cells)
    if evaluation.published:
        table.add_section()
        table.add_row("[italic]published (LDNS §13.1):[/]")
        for record in published_table1_rows():
            table.add_row(
                f"[dim]{record['method']}[/]",
                "",
                *(
                    f"[dim]{_mean_std(record[name], record[f'{name}_std'])}[/]"
                    for name in TABLE1_METRICS
                ),
            )
    captions = [f"ISI errors in {'bins' if unit == 'bins' else 'seconds'}"]
    if evaluation.published:
        captions.append("published rows: LDNS §13.1, MC_Maze training trials at 5 ms")
    if evaluation.report_path is not None:
        captions.append(f"report: {evaluation.report_path}")
    table.caption = "; ".join(captions)
    return table


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.3g} ± {std:.2g}"


@app.command(
    "behavior",
    epilog=(
        "Example: neuralcli evaluate behavior --samples runs/diffusion-monkey-angle/samples.npz "
        "--real mc_maze:train --out behavior"
    ),
)
@handle_errors
def behavior(
    samples_ref: Annotated[
        str,
        typer.Option(
            "--samples", "-s", help="Conditioned samples (.npz from `neuralcli sample`) or run"
        ),
    ],
    real: Annotated[
        str | None,
        typer.Option(
            "--real",
            "-r",
            help="Real trials the decoder is fit on (default: the samples' dataset, train split)",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for behavior.json and the plots")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Trials per AE pass")] = 256,
    device: DeviceOption = None,
) -> None:
    """Decode hand velocity from conditioned samples' rates with a ridge decoder fit on real
    AE rates (LDNS §11.3): R² against the velocity condition, reach-angle errors against the
    angle condition, and the decoder's held-out R² as the ceiling."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be at least 1")
    runtime = make_runtime(device)
    with RichReporter() as reporter:
        evaluation = evaluate_behavior(
            samples_ref,
            home=options().home_path,
            device=runtime.device,
            real=real,
            out_dir=out,
            batch_size=batch_size,
            reporter=reporter,
        )
    emit(evaluation.to_dict(), behavior_table(evaluation))


def behavior_table(evaluation: BehaviorEvaluation) -> Table:
    """Scores of the conditioned samples, the decoder's ceilings and the bars met/missed."""
    report = evaluation.report
    table = Table(
        title=f"behaviour of {evaluation.samples} (decoder fit on {evaluation.real})",
        title_justify="left",
    )
    table.add_column("score", style="bold")
    table.add_column("value", justify="right")
    table.add_column("bar", justify="right")
    table.add_row("decoder R² (fit trials)", f"{evaluation.train_r2:.3f}", "")
    for split, value in evaluation.ceilings.items():
        table.add_row(f"decoder R² ({split}, ceiling)", f"{value:.3f}", "")
    bars = evaluation.bars()
    if "velocity_r2" in bars:
        bar = bars["velocity_r2"]
        table.add_row(
            f"velocity R² ({report.n_velocity_samples} samples)",
            f"{bar['value']:.3f}",
            f"≥ {bar['bar']:g}: {_met(bar['met'])}",
        )
    if "angle_within_fraction" in bars:
        bar = bars["angle_within_fraction"]
        table.add_row(
            f"angles within ±{report.tolerance_degrees:g}° ({report.n_angle_samples} samples, "
            f"bin {report.angle_bin})",
            f"{100 * bar['value']:.1f}%",
            f"≥ {100 * bar['bar']:.0f}%: {_met(bar['met'])}",
        )
        table.add_row("median |angle error|", f"{report.angle_median_abs_error:.1f}°", "")
    if evaluation.report_path is not None:
        table.caption = f"report: {evaluation.report_path}"
    return table


def _met(met: bool) -> str:
    return "[green]met[/]" if met else "[red]missed[/]"


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
        typer.Option("--sessions", help="Comma-separated sessions (default: all on disk)"),
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
