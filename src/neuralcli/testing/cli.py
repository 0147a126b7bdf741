"""Driving the CLI in tests: invoke a command in a home folder, read its JSON, and check the
one-line error contract (exit 2, one line on stderr naming the problem, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from neuralcli.cli.main import app

runner = CliRunner()


def invoke(home: str | Path, *args: str, device: str | None = "cpu") -> Any:
    """Run `neuralcli --home HOME [--device DEVICE] ARGS...`; returns click's Result."""
    options = ["--home", str(home)] + (["--device", device] if device else [])
    return runner.invoke(app, [*options, *args])


def invoke_json(home: str | Path, *args: str, device: str | None = "cpu") -> dict:
    """Run the command with --json, assert it succeeded and return its JSON object."""
    result = invoke(home, "--json", *args, device=device)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result: Any, *fragments: str) -> None:
    """Exit code 2, exactly one non-empty stderr line holding every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
