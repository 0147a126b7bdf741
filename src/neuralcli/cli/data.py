"""`neuralcli data fetch|segment|info|list`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from neuralcli.cli.common import RichReporter, emit, handle_errors, key_value_table, options
from neuralcli.config.build import build_config
from neuralcli.data.flint_dataset import FlintSettings
from neuralcli.data.human_dataset import HumanSettings
from neuralcli.data.makin_dataset import MakinSettings
from neuralcli.data.mc_maze_dataset import McMazeSettings
from neuralcli.data.registry import DATASETS, get_dataset
from neuralcli.data.sources.dandi import MC_MAZE_VARIANTS
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.data.synthetic_reach_dataset import SyntheticReachDatasetSettings
from neuralcli.errors import ConfigError
from neuralcli.pipelines.data_info import data_info
from neuralcli.pipelines.fetch import (
    RawFetchResult,
    dataset_status,
    fetch_flint_files,
    fetch_makin_files,
    fetch_simulated,
    raw_session_status,
)
from neuralcli.pipelines.human import fetch_human, segment_human
from neuralcli.pipelines.mc_maze import fetch_mc_maze, segment_mc_maze
from neuralcli.pipelines.segment import (
    SegmentResult,
    prepare_synthetic_reach,
    segment_flint,
    segment_makin,
)

app = typer.Typer(help="Download, simulate, segment and list datasets.", no_args_is_help=True)

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2}
_SIZE_UNITS |= {"mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "tib": 1024**4}
_SEGMENTABLE = ("makin", "flint", "synthetic-reach", "mc_maze", "human")
_DOWNLOADED = ("makin", "flint", "mc_maze", "human")


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return str(n_bytes)


def parse_size(text: str, option: str) -> int:
    """'2GiB' -> 2147483648; ConfigError naming `option` for anything unreadable."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ConfigError(f"{option} {text!r}: expected a size such as 2GiB, 512MiB or 1e9")
    value = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if value <= 0:
        raise ConfigError(f"{option} must be positive, got {text!r}")
    return value


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError("--sessions is empty; give names separated by commas")
    return names


def _only_for(dataset: str, allowed: tuple[str, ...], **given: Any) -> None:
    """ConfigError when an option given on the command line does not apply to `dataset`."""
    if dataset in allowed:
        return
    for option, value in given.items():
        if value not in (None, False, []):
            flag = "--" + option.replace("_", "-")
            raise ConfigError(f"{flag} applies to {', '.join(allowed)}, not to {dataset}")


@app.command(
    "fetch",
    epilog=(
        "Examples: neuralcli data fetch lorenz --n-trials 5000 --length 256 | "
        "neuralcli data fetch makin --sessions 20160622_01,20161013_03 --dry-run | "
        "neuralcli data fetch flint --from ~/Downloads | "
        "neuralcli data fetch mc_maze --variant small --dry-run | neuralcli data fetch human | "
        "neuralcli data fetch synthetic-reach --sessions 12 --seed 0 | "
        "neuralcli data fetch synthetic-maze --set n_trials=600"
    ),
)
@handle_errors
def fetch(
    dataset: Annotated[str, typer.Argument(help=f"Dataset: {', '.join(DATASETS)}")],
    sessions: Annotated[
        str | None,
        typer.Option(
            "--sessions",
            help="makin: session names, comma-separated [default: all 30]; "
            "synthetic-reach: number of sessions [default: 12]",
        ),
    ] = None,
    no_broadband: Annotated[
        bool, typer.Option("--no-broadband", help="makin: only the .mat files (no LFP later)")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="makin/flint/mc_maze/human: list files, download nothing"),
    ] = False,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help=f"mc_maze: {'|'.join(MC_MAZE_VARIANTS)} [default: full]"),
    ] = None,
    from_dir: Annotated[
        Path | None,
        typer.Option("--from", help="flint: folder holding Flint_2012_e*.mat you downloaded"),
    ] = None,
    accept_terms: Annotated[
        bool,
        typer.Option("--accept-terms", help="flint: accept the CRCNS terms; download as guest"),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="lorenz/synthetic-reach/synthetic-maze: simulation seed"),
    ] = None,
    n_trials: Annotated[int, typer.Option("--n-trials", help="lorenz: trials")] = 5000,
    length: Annotated[int, typer.Option("--length", help="lorenz: bins per trial")] = 256,
    n_neurons: Annotated[int, typer.Option("--n-neurons", help="lorenz: neurons")] = 128,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="synthetic-reach/synthetic-maze: a setting, e.g. "
            "simulation.seconds_per_session=60 or n_trials=600",
        ),
    ] = None,
) -> None:
    """Get a dataset onto disk: download and verify it, or simulate it."""
    get_dataset(dataset)
    _only_for(dataset, ("makin",), no_broadband=no_broadband)
    _only_for(dataset, _DOWNLOADED, dry_run=dry_run)
    _only_for(dataset, ("mc_maze",), variant=variant)
    _only_for(dataset, ("flint",), from_dir=from_dir, accept_terms=accept_terms)
    _only_for(dataset, ("makin", "synthetic-reach"), sessions=sessions)
    _only_for(dataset, ("lorenz", "synthetic-reach", "synthetic-maze"), seed=seed)
    _only_for(dataset, ("synthetic-reach", "synthetic-maze"), overrides=overrides)
    home = options().home_path
    if dataset in ("lorenz", "synthetic-maze"):
        if dataset == "lorenz":
            settings = build_config(
                LorenzSettings,
                {
                    "n_trials": n_trials,
                    "length": length,
                    "n_neurons": n_neurons,
                    "seed": 42 if seed is None else seed,
                },
            )
        else:
            base = SyntheticMazeSettings().to_dict()
            if seed is not None:
                base["seed"] = seed
            settings = build_config(SyntheticMazeSettings, base, overrides)
        with RichReporter() as reporter:
            result = fetch_simulated(home, dataset, settings, reporter=reporter)
        payload = {
            "dataset": result.dataset,
            "directory": str(result.directory),
            "settings_hash": result.settings_hash,
            "size_bytes": result.size_bytes,
            "already_present": result.already_present,
        }
        rows = dict(payload, size_bytes=_size(result.size_bytes))
        emit(payload, key_value_table(f"data fetch {dataset}", rows))
        return
    if dataset == "synthetic-reach":
        base = SyntheticReachDatasetSettings().to_dict()
        if sessions is not None:
            if not sessions.strip().isdigit():
                raise ConfigError(
                    f"--sessions {sessions!r}: synthetic-reach takes a count of sessions, e.g. 12"
                )
            base["simulation"]["n_sessions"] = int(sessions)
        if seed is not None:
            base["simulation"]["seed"] = seed
        synthetic = build_config(SyntheticReachDatasetSettings, base, overrides)
        with RichReporter() as reporter:
            segmented = prepare_synthetic_reach(home, synthetic, reporter=reporter)
        _emit_segments(segmented, "data fetch synthetic-reach")
        return
    with RichReporter() as reporter:
        if dataset == "mc_maze":
            fetched = fetch_mc_maze(
                home, variant=variant or "full", dry_run=dry_run, reporter=reporter
            )
        elif dataset == "human":
            fetched = fetch_human(home, dry_run=dry_run, reporter=reporter)
        elif dataset == "makin":
            fetched = fetch_makin_files(
                home,
                _names(sessions),
                broadband=not no_broadband,
                dry_run=dry_run,
                reporter=reporter,
            )
        else:
            if from_dir is None and not accept_terms and not dry_run:
                raise ConfigError(
                    "flint cannot be downloaded without accepting the CRCNS terms: download "
                    "Flint_2012_e1..e5.mat from crcns.org (DREAM) and run `neuralcli data fetch "
                    "flint --from <folder>`, or run it with --accept-terms"
                )
            fetched = fetch_flint_files(
                home,
                source_dir=from_dir.expanduser() if from_dir else None,
                accept_terms=accept_terms,
                dry_run=dry_run,
                reporter=reporter,
            )
    _emit_files(fetched)


def _emit_files(result: RawFetchResult) -> None:
    table = Table(
        title=f"data fetch {result.dataset}" + (" (dry run)" if result.dry_run else ""),
        title_justify="left",
    )
    for column in ("file", "size", "status"):
        table.add_column(column)
    for outcome in result.files:
        size = "?" if outcome.size is None else _size(outcome.size)
        table.add_row(outcome.relative, size, outcome.status)
    total = sum(f.size or 0 for f in result.files)
    table.add_row("[bold]total[/]", _size(total), str(result.directory))
    emit(result.to_dict(), table)


def _emit_segments(result: SegmentResult, title: str) -> None:
    table = Table(
        title=f"{title} -> {result.directory} (settings {result.settings_hash})",
        title_justify="left",
    )
    for column in ("session", "status", "channels", "units", "train", "val", "test", "seconds"):
        table.add_column(column)
    for s in result.sessions:
        table.add_row(
            s.session,
            s.status,
            str(s.n_channels),
            str(s.n_units),
            *(str(s.n_segments.get(split, 0)) for split in ("train", "val", "test")),
            f"{s.seconds:.1f}",
        )
    emit(result.to_dict(), table)


@app.command(
    "segment",
    epilog=(
        "Examples: neuralcli data segment makin --sessions 20160622_01 --max-memory 2GiB "
        "--workers 2 | neuralcli data segment flint | "
        "neuralcli data segment makin --set zscore_statistics=train | "
        "neuralcli data segment mc_maze --variant small | neuralcli data segment human"
    ),
)
@handle_errors
def segment(
    dataset: Annotated[str, typer.Argument(help=f"Dataset: {', '.join(_SEGMENTABLE)}")],
    sessions: Annotated[
        str | None,
        typer.Option("--sessions", help="Session names, comma-separated [default: all present]"),
    ] = None,
    segment_seconds: Annotated[
        float, typer.Option("--segment-seconds", help="Length of the stored segments (5 or 10)")
    ] = 5.0,
    max_memory: Annotated[
        str, typer.Option("--max-memory", help="makin: memory budget for LFP extraction")
    ] = "2GiB",
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="makin: sessions processed in parallel")
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Redo sessions already segmented")
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Processing setting, e.g. lfp.lowpass_hz=40, min_rate_hz=0.5"),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help=f"mc_maze: {'|'.join(MC_MAZE_VARIANTS)} [default: full]"),
    ] = None,
) -> None:
    """Cut sessions into 10 s parents with train/val/test splits and 5 s segments of spikes,
    LFP and velocity on one 10 ms grid; one HDF5 file per session."""
    if dataset not in _SEGMENTABLE:
        get_dataset(dataset)
        raise ConfigError(
            f"{dataset} is not segmented; `data segment` takes {', '.join(_SEGMENTABLE)}"
        )
    _only_for(dataset, ("makin",), workers=workers > 1)
    _only_for(dataset, ("mc_maze",), variant=variant)
    budget = parse_size(max_memory, "--max-memory")
    home = options().home_path
    if dataset in ("mc_maze", "human"):
        if sessions is not None:
            raise ConfigError(f"--sessions does not apply to {dataset} (one session)")
        if segment_seconds != 5.0:
            raise ConfigError(f"--segment-seconds does not apply to {dataset} (trials)")
        _segment_trials(dataset, variant, overwrite, overrides, home)
        return
    with RichReporter() as reporter:
        if dataset == "makin":
            settings = _settings(MakinSettings, segment_seconds, overrides)
            result = segment_makin(
                home,
                settings,
                _names(sessions),
                max_memory_bytes=budget,
                workers=workers,
                overwrite=overwrite,
                reporter=reporter,
            )
        elif dataset == "flint":
            settings = _settings(FlintSettings, segment_seconds, overrides)
            result = segment_flint(
                home, settings, _names(sessions), overwrite=overwrite, reporter=reporter
            )
        else:
            if sessions is not None:
                raise ConfigError("synthetic-reach: set the number of sessions with `data fetch`")
            settings = _settings(SyntheticReachDatasetSettings, segment_seconds, overrides)
            result = prepare_synthetic_reach(home, settings, overwrite=overwrite, reporter=reporter)
    _emit_segments(result, f"data segment {dataset}")


def _segment_trials(
    dataset: str, variant: str | None, overwrite: bool, overrides: list[str] | None, home: Path
) -> None:
    """`data segment mc_maze|human`: one trial file per dataset (interfaces of LDNS data)."""
    with RichReporter() as reporter:
        if dataset == "mc_maze":
            base = McMazeSettings().to_dict()
            if variant is not None:
                base["variant"] = variant
            settings = build_config(McMazeSettings, base, overrides)
            result = segment_mc_maze(home, settings, overwrite=overwrite, reporter=reporter)
            _emit_segments(result, "data segment mc_maze")
            return
        human = build_config(HumanSettings, HumanSettings().to_dict(), overrides)
        outcome = segment_human(home, human, overwrite=overwrite, reporter=reporter)
    payload = outcome.to_dict()
    rows = dict(payload, n_trials=", ".join(f"{k} {v}" for k, v in outcome.n_trials.items()))
    emit(payload, key_value_table("data segment human", rows))


def _settings(cls: type, segment_seconds: float, overrides: list[str] | None) -> Any:
    """The dataset's default settings with --segment-seconds and --set applied."""
    base = cls().to_dict()
    base["segment"]["segment_seconds"] = segment_seconds
    return build_config(cls, base, overrides)


@app.command(
    "info",
    epilog="Examples: neuralcli data info makin:20160622_01 | neuralcli data info synthetic-reach",
)
@handle_errors
def info(
    ref: Annotated[str, typer.Argument(help="dataset:session, or a dataset for all its sessions")],
    no_decoding: Annotated[
        bool, typer.Option("--no-decoding", help="Skip the spikes/LFP velocity decoding R²")
    ] = False,
) -> None:
    """Channels, units, duration, segments per split, settings hash and linear decoding R²
    (velocity from smoothed spikes vs from LFP) of processed paired sessions."""
    sessions = data_info(options().home_path, ref, decoding=not no_decoding)
    table = Table(title=f"data info {ref}", title_justify="left")
    columns = ("session", "settings", "channels", "units", "minutes", "train", "val", "test")
    for column in (*columns, "spikes R²", "LFP R²"):
        table.add_column(column)
    for s in sessions:
        table.add_row(
            s.session,
            s.settings_hash,
            str(s.n_channels),
            str(s.n_units),
            f"{s.duration_seconds / 60:.1f}",
            *(str(s.n_segments.get(split, 0)) for split in ("train", "val", "test")),
            "-" if s.spikes_r2 is None else f"{s.spikes_r2:.3f}",
            "-" if s.lfp_r2 is None else f"{s.lfp_r2:.3f}",
        )
    emit({"sessions": [s.to_dict() for s in sessions]}, table)


@app.command("list", epilog="Examples: neuralcli --json data list | neuralcli data list makin")
@handle_errors
def list_command(
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset")] = None,
) -> None:
    """List the datasets neuralcli knows, which are present locally, and their sizes; with
    makin or flint, also each session's raw files and processed status."""
    home = options().home_path
    statuses = dataset_status(home, dataset)
    table = Table(title=f"datasets in {home}", title_justify="left")
    for column in ("dataset", "kind", "present", "variants", "rows", "size", "description"):
        table.add_column(column)
    payload: dict[str, Any] = {"datasets": []}
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
        payload["datasets"].append(
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
    if dataset in ("makin", "flint"):
        rows = raw_session_status(home, dataset)
        payload["sessions"] = [row._asdict() for row in rows]
        table = _session_table(dataset, rows, home)
    emit(payload, table)


def _session_table(dataset: str, rows: list[Any], home: Path) -> Table:
    table = Table(title=f"{dataset} sessions in {home}", title_justify="left")
    for column in ("session", "raw files", "on disk", "segmented (settings)"):
        table.add_column(column)
    for row in rows:
        marks = [
            f"{name} {'verified' if ok else ('present' if here else 'missing')}"
            for name, here, ok in zip(row.files, row.present, row.verified, strict=True)
        ]
        table.add_row(
            row.session, ", ".join(marks), _size(row.size_bytes), ", ".join(row.segmented) or "-"
        )
    return table
