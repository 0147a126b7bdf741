"""`neuralcli infer`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neuralcli.cli.common import RichReporter, emit, handle_errors, options
from neuralcli.cli.runtime_options import DeviceOption, PrecisionOption, make_runtime
from neuralcli.pipelines.infer import InferResult, infer_embeddings

EXAMPLE = (
    "Example: neuralcli infer --model runs/distilled-s03 --data synthetic-reach:s05 --out emb.h5"
)


def infer_table(result: InferResult) -> Table:
    table = Table(title=f"embeddings of {result.model.name} -> {result.out}", title_justify="left")
    for column in ("session", "table used", "segments", "seconds"):
        table.add_column(column, justify="left" if column != "segments" else "right")
    for row in result.sessions:
        table.add_row(
            row.session, row.as_session or "own", str(row.n_segments), f"{row.seconds:.1f}"
        )
    table.caption = f"{result.model_kind}: one {result.dim}-d embedding per time step"
    return table


@handle_errors
def infer(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Trained teacher, MS-LFP or distilled run")
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data", help="dataset or dataset:session, e.g. flint:e2_1 or synthetic-reach"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Embeddings file to write (.h5)")],
    sessions: Annotated[
        str | None,
        typer.Option("--sessions", help="Comma-separated sessions of --data [default: all]"),
    ] = None,
    as_session: Annotated[
        str | None,
        typer.Option(
            "--as-session", help="Tokenize every session with this vocabulary session's table"
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Segments per forward pass")] = 64,
    float16: Annotated[bool, typer.Option("--float16", help="Store embeddings as float16")] = False,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
) -> None:
    """Encode every 5 s segment of paired sessions into per-10-ms-step embeddings (HDF5)."""
    runtime = make_runtime(device, precision)
    names = None if sessions is None else [s.strip() for s in sessions.split(",") if s.strip()]
    with RichReporter() as reporter:
        result = infer_embeddings(
            model,
            data,
            out,
            home=options().home_path,
            runtime=runtime,
            sessions=names,
            as_session=as_session,
            batch_size=batch_size,
            embedding_dtype="float16" if float16 else "float32",
            reporter=reporter,
        )
    emit(result.to_dict(), infer_table(result))
