"""What every command shares: global options, the console, errors, progress bars, output."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from neuralcli.errors import NeuralCliError
from neuralcli.runtime.checkpoint import json_default
from neuralcli.runtime.home import resolve_home

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class GlobalOptions:
    home: str | None = None
    device: str = "auto"
    precision: str = "auto"
    seed: int = 42
    json: bool = False
    verbose: bool = False
    compile: bool = False
    deterministic: bool = False

    @property
    def home_path(self) -> Path:
        return resolve_home(self.home)


@dataclass
class _State:
    options: GlobalOptions = field(default_factory=GlobalOptions)


STATE = _State()


def options() -> GlobalOptions:
    return STATE.options


def handle_errors(func: F) -> F:
    """Print a NeuralCliError as one line on stderr and exit with its code (2)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NeuralCliError as err:
            message = " ".join(str(err).split())
            stderr.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
            raise typer.Exit(code=err.exit_code) from None
        except KeyboardInterrupt:
            stderr.print("[bold red]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


class RichReporter:
    """ProgressReporter drawing rich progress bars on stderr (so --json stdout stays clean)."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled and not options().json
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        if self.enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=stderr,
                transient=False,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start(self, task: str, total: int) -> None:
        if self.progress is not None:
            self.tasks[task] = self.progress.add_task(task, total=total, info="")

    def update(self, task: str, completed: int, **fields: Any) -> None:
        if self.progress is None or task not in self.tasks:
            return
        info = "  ".join(f"{k} {_short(v)}" for k, v in fields.items() if v is not None)
        self.progress.update(self.tasks[task], completed=completed, info=info)

    def finish(self, task: str) -> None:
        if self.progress is not None and task in self.tasks:
            total = self.progress.tasks[self.tasks[task]].total
            self.progress.update(self.tasks[task], completed=total)

    def message(self, text: str) -> None:
        if options().json:
            return
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)
        else:
            stderr.print(text, highlight=False)


def describe_setup(config: Any, runtime: Any) -> None:
    """With --verbose: print the resolved config and the runtime on stderr."""
    if not options().verbose or options().json:
        return
    from neuralcli.config.build import dump_yaml

    stderr.print(f"runtime: {runtime.describe()}", highlight=False)
    stderr.print(dump_yaml(config).rstrip(), highlight=False, markup=False)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def emit(payload: dict[str, Any], table: Table | None = None) -> None:
    """Print the command's result: one JSON object with --json, else the rich table."""
    if options().json:
        sys.stdout.write(json.dumps(payload, default=json_default) + "\n")
        sys.stdout.flush()
    elif table is not None:
        stdout.print(table)


def key_value_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(key, _short(value))
    return table
