"""`neuralcli data fetch` and `data list`: get a dataset onto disk, report what is there."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from neuralcli.data.download import FetchProgressFn, FileOutcome, read_manifest
from neuralcli.data.registry import DatasetStatus, get_dataset, list_datasets
from neuralcli.data.sources.flint_remote import (
    FLINT_SESSIONS,
    fetch_flint_guest,
    flint_dir,
    import_flint,
)
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.sources.makin_remote import (
    MAKIN_SESSIONS,
    fetch_makin,
    makin_dir,
    makin_raw_paths,
)
from neuralcli.data.store import (
    directory_size,
    processed_dir,
    processed_folders,
    session_files,
    settings_hash,
)
from neuralcli.data.trial_datasets import get_trial_dataset
from neuralcli.pipelines.data import ensure_prepared
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter


@dataclass
class FetchResult:
    dataset: str
    directory: Path
    settings_hash: str
    size_bytes: int
    already_present: bool


def fetch_simulated(
    home: Path, dataset: str, settings: Any, *, reporter: ProgressReporter | None = None
) -> FetchResult:
    """Simulate a synthetic trial dataset (lorenz, synthetic-maze): nothing to download."""
    reporter = reporter or SilentReporter()
    info = get_trial_dataset(dataset)
    hashed = info.settings_dict(settings)
    directory = processed_dir(home, dataset, hashed)
    present = info.is_prepared(home, settings)
    ensure_prepared(home, info, settings, reporter)
    return FetchResult(
        dataset=dataset,
        directory=directory,
        settings_hash=settings_hash(hashed),
        size_bytes=directory_size(directory),
        already_present=present,
    )


def fetch_lorenz(
    home: Path, settings: LorenzSettings, *, reporter: ProgressReporter | None = None
) -> FetchResult:
    """Simulate the Lorenz dataset (Lorenz has nothing to download)."""
    return fetch_simulated(home, "lorenz", settings, reporter=reporter)


def dataset_status(home: Path, name: str | None = None) -> list[DatasetStatus]:
    """Known datasets (or one), with their processed variants on disk."""
    statuses = list_datasets(home)
    if name is None:
        return statuses
    get_dataset(name)  # DataError naming the known datasets
    return [status for status in statuses if status.name == name]


@dataclass
class RawFetchResult:
    """What a download or import did, file by file."""

    dataset: str
    directory: Path
    files: list[FileOutcome]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "directory": str(self.directory),
            "dry_run": self.dry_run,
            "files": [f._asdict() for f in self.files],
            "bytes": sum(f.size or 0 for f in self.files),
        }


def fetch_makin_files(
    home: Path,
    sessions: Sequence[str] | None,
    *,
    broadband: bool = True,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
) -> RawFetchResult:
    """Download (or, with dry_run, list) the Makin files of `sessions` (None: all 30)."""
    outcomes = fetch_makin(
        home,
        sessions,
        broadband=broadband,
        dry_run=dry_run,
        on_progress=file_progress(reporter or SilentReporter()),
    )
    return RawFetchResult("makin", makin_dir(home), outcomes, dry_run)


def fetch_flint_files(
    home: Path,
    *,
    source_dir: Path | None = None,
    accept_terms: bool = False,
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
) -> RawFetchResult:
    """Import Flint files from `source_dir`, or download them as a CRCNS guest."""
    if source_dir is not None:
        outcomes = import_flint(home, source_dir)
    else:
        outcomes = fetch_flint_guest(
            home,
            accept_terms=accept_terms,
            dry_run=dry_run,
            on_progress=file_progress(reporter or SilentReporter()),
        )
    return RawFetchResult("flint", flint_dir(home), outcomes, dry_run)


def file_progress(reporter: ProgressReporter) -> FetchProgressFn:
    started: set[str] = set()

    def on_progress(relative: str, done: int, total: int | None) -> None:
        if relative not in started:
            reporter.start(relative, total or 0)
            started.add(relative)
        reporter.update(relative, done)
        if total is not None and done >= total:
            reporter.finish(relative)

    return on_progress


class RawSessionStatus(NamedTuple):
    """One session of a downloaded paired dataset: its raw files and whether it is segmented."""

    session: str
    files: list[str]  # raw file names the session needs
    present: list[bool]  # per file: on disk
    verified: list[bool]  # per file: recorded in MANIFEST.json with the size on disk
    size_bytes: int  # raw bytes on disk (a Flint file is shared by its sessions)
    segmented: list[str]  # settings hashes of the processed folders holding the session


def raw_session_status(home: Path, dataset: str) -> list[RawSessionStatus]:
    """Per-session raw and processed status of `makin` or `flint`."""
    if dataset == "makin":
        root = makin_dir(home)
        needed = {s: [p.name for p in makin_raw_paths(home, s)] for s in MAKIN_SESSIONS}
    elif dataset == "flint":
        root = flint_dir(home)
        needed = {s: [location.file] for s, location in FLINT_SESSIONS.items()}
    else:
        raise ValueError(f"{dataset!r} has no per-session raw files")
    manifest = read_manifest(root) if root.is_dir() else {}
    folders = {d.name: {p.stem for p in session_files(d)} for d in processed_folders(home, dataset)}
    rows = []
    for session, names in needed.items():
        paths = [root / name for name in names]
        present = [p.is_file() for p in paths]
        sizes = [p.stat().st_size if ok else 0 for p, ok in zip(paths, present, strict=True)]
        verified = [
            ok and manifest.get(name, {}).get("size") == size
            for name, ok, size in zip(names, present, sizes, strict=True)
        ]
        rows.append(
            RawSessionStatus(
                session=session,
                files=names,
                present=present,
                verified=verified,
                size_bytes=sum(sizes),
                segmented=sorted(h for h, stems in folders.items() if session in stems),
            )
        )
    return rows
