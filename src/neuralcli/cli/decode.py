"""`neuralcli decode`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neuralcli.cli.common import STATE, RichReporter, emit, handle_errors, options
from neuralcli.pipelines.decode import TARGETS, DecodeReport, decode_embeddings

EXAMPLE = "Example: neuralcli decode emb.h5"


def decoding_table(report: DecodeReport) -> Table:
    """One row per session: segments per split, train R², val+test R²; then the mean."""
    model = report.attrs.get("model")
    title = f"{report.target} decoding from {report.path.name}" + (f" ({model})" if model else "")
    table = Table(title=title, title_justify="left")
    table.add_column("session", style="bold")
    for column in ("train segments", "val+test segments", "train R²", "val+test R²"):
        table.add_column(column, justify="right")
    for row in report.sessions:
        table.add_row(
            row.session,
            str(row.n_segments["train"]),
            str(row.n_segments["val"] + row.n_segments["test"]),
            f"{row.train_r2:.3f}",
            f"{row.heldout_r2:.3f}",
        )
    table.add_section()
    table.add_row(
        f"mean ({len(report.sessions)})",
        "",
        "",
        f"{report.mean_train_r2:.3f}",
        f"{report.mean_heldout_r2:.3f}",
        style="bold",
    )
    table.caption = "OLS with intercept per session, fit on train steps, R² on val+test pooled"
    return table


@handle_errors
def decode(
    embeddings: Annotated[
        Path, typer.Argument(help="Embeddings file (.h5) written by `neuralcli infer`")
    ],
    target: Annotated[
        str, typer.Option("--target", help=f"What to decode: {', '.join(TARGETS)}")
    ] = "velocity",
    sessions: Annotated[
        str | None,
        typer.Option("--sessions", help="Comma-separated sessions to decode [default: all]"),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object, no table")
    ] = False,
) -> None:
    """Decode velocity linearly from frozen embeddings, one decoder per session: R² of OLS fit
    on train 10 ms steps, scored on val+test (distillation §9)."""
    if json_output:
        STATE.options = dataclasses.replace(options(), json=True)
    names = None if sessions is None else [s.strip() for s in sessions.split(",") if s.strip()]
    with RichReporter() as reporter:
        report = decode_embeddings(embeddings, target=target, sessions=names, reporter=reporter)
    emit(report.to_dict(), decoding_table(report))
