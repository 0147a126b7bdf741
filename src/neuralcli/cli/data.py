"""`neuralcli data fetch|list`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from neuralcli.cli.common import RichReporter, emit, handle_errors, key_value_table, options
from neuralcli.config.build import build_config
from neuralcli.data.registry import DATASETS
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.errors import DataError
from neuralcli.pipelines.fetch import dataset_status, fetch_lorenz

app = typer.Typer(help="Download, simulate and list datasets.", no_args_is_help=True)


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return str(n_bytes)


@app.command("fetch", epilog="Example: neuralcli data fetch lorenz --n-trials 5000 --length 256")
@handle_errors
def fetch(
    dataset: Annotated[str, typer.Argument(help=f"Dataset: {', '.join(DATASETS)}")],
    n_trials: Annotated[int, typer.Option("--n-trials", help="lorenz: trials")] = 5000,
    length: Annotated[int, typer.Option("--length", help="lorenz: bins per trial")] = 256,
    n_neurons: Annotated[int, typer.Option("--n-neurons", help="lorenz: neurons")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="lorenz: simulation seed")] = 42,
) -> None:
    """Get a dataset onto disk (Lorenz is simulated locally: nothing to download)."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    settings = build_config(
        LorenzSettings,
        {"n_trials": n_trials, "length": length, "n_neurons": n_neurons, "seed": seed},
    )
    with RichReporter() as reporter:
        result = fetch_lorenz(options().home_path, settings, reporter=reporter)
    payload = {
        "dataset": result.dataset,
        "directory": str(result.directory),
        "settings_hash": result.settings_hash,
        "size_bytes": result.size_bytes,
        "already_present": result.already_present,
    }
    rows = dict(payload, size_bytes=_size(result.size_bytes))
    emit(payload, key_value_table(f"data fetch {dataset}", rows))


@app.command("list", epilog="Example: neuralcli --json data list")
@handle_errors
def list_command(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset")] = None,
) -> None:
    """List the datasets neuralcli knows, which are present locally, and their sizes."""
    statuses = dataset_status(options().home_path, dataset)
    table = Table(title=f"datasets in {options().home_path}", title_justify="left")
    for column in ("dataset", "kind", "present", "variants", "trials", "size", "description"):
        table.add_column(column)
    payload = []
    for status in statuses:
        variants = [
            {
                "hash": v.hash,
                "n_trials": v.n_trials,
                "size_bytes": v.size_bytes,
                "default": v.is_default,
                "problem": v.problem,
                "settings": v.settings,
            }
            for v in status.variants
        ]
        payload.append(
            {
                "name": status.name,
                "kind": status.kind,
                "present": status.present,
                "size_bytes": status.size_bytes,
                "description": status.description,
                "citation": status.citation,
                "variants": variants,
            }
        )
        table.add_row(
            status.name,
            status.kind,
            "yes" if status.present else "no",
            ", ".join(v.hash + ("*" if v.is_default else "") for v in status.variants) or "-",
            ", ".join(str(v.n_trials) for v in status.variants) or "-",
            _size(status.size_bytes),
            status.description,
        )
    emit({"datasets": payload}, table)
