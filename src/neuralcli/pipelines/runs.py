"""Finding run directories from what a user types: a path, `runs/<name>`, or a bare name."""

from __future__ import annotations

from pathlib import Path

from neuralcli.errors import RunDirError

RUNS = "runs"


def run_dir_for(home: Path, name: str) -> Path:
    """Where a new run called `name` lives: <home>/runs/<name>."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise RunDirError(f"--name {name!r}: a run name is one folder name, e.g. ae-lorenz")
    return home / RUNS / name


def home_candidates(ref: str | Path, home: Path) -> list[Path]:
    """Where `ref` may be, in the order looked at: as given (absolute or relative to the
    working directory), relative to the home directory (`runs/ae-lorenz`), and under
    <home>/runs (`ae-lorenz`)."""
    ref_path = Path(ref).expanduser()
    return [ref_path, home / ref_path, home / RUNS / ref_path]


def resolve_run_dir(ref: str | Path, home: Path) -> Path:
    """The first of `home_candidates` that is a folder: a path, `runs/ae-lorenz` or a run name."""
    candidates = home_candidates(ref, home)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise RunDirError(
        f"run {str(ref)!r} not found (looked in {', '.join(str(c) for c in candidates)}); "
        "pass the folder made by `neuralcli train`"
    )
