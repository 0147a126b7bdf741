"""`neuralcli data fetch human` and `data segment human`: the Willett 2023 speech-BCI trials.

fetch:   Dryad listing -> raw/human/competitionData.tar.gz (resumable, verified, MANIFEST.json)
         -> raw/human/competitionData/{train,test}/*.mat (safe, streamed extraction)
segment: the .mat files -> processed/human/<hash>/human.h5 (tx1, 128 channels, <= 512 bins + mask)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.human_dataset import (
    SESSION_FILE,
    HumanSettings,
    human_dir,
    human_raw_dir,
    human_settings_dict,
    is_prepared,
    prepare_human,
)
from neuralcli.data.sources.dryad import (
    WILLETT_DOI,
    describe,
    fetch_dryad_file,
    find_file,
    list_version_files,
)
from neuralcli.data.sources.willett import (
    ARCHIVE_NAME,
    SPLIT_FOLDERS,
    ExtractResult,
    competition_files,
    extract_competition_data,
)
from neuralcli.data.store import open_session, settings_hash
from neuralcli.errors import DataError
from neuralcli.pipelines.fetch import RawFetchResult
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter


@dataclass
class HumanFetchResult(RawFetchResult):
    """The archive's download outcome, plus the .mat files extracted from it per folder."""

    extracted: dict[str, int] = field(default_factory=dict)  # folder -> number of .mat files

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "extracted": dict(self.extracted)}


@dataclass
class HumanSegmentResult:
    dataset: str
    directory: Path
    settings_hash: str
    path: Path
    status: str  # "written" | "skipped" (already on disk with these settings)
    n_trials: dict[str, int]  # per split
    n_dropped: dict[str, int]  # per source folder: sentences longer than max_bins
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items() if k not in ("directory", "path")},
            "directory": str(self.directory),
            "path": str(self.path),
            "seconds": round(self.seconds, 2),
        }


def fetch_human(
    home: Path, *, dry_run: bool = False, reporter: ProgressReporter | None = None
) -> HumanFetchResult:
    """Download competitionData.tar.gz from Dryad (NEURALCLI_DRYAD_URL) and extract it.

    A dry run lists the archive on Dryad and reports it as "planned" (or "skipped" when it is
    verified on disk) without writing anything.
    """
    home = Path(home)
    reporter = reporter or SilentReporter()
    root = human_raw_dir(home)
    entry = find_file(list_version_files(WILLETT_DOI), ARCHIVE_NAME)
    reporter.message(f"Dryad {WILLETT_DOI}: {describe(entry)}")
    task = f"download {ARCHIVE_NAME}"
    started = False

    def on_progress(done: int, total: int | None) -> None:
        nonlocal started
        if not started:
            reporter.start(task, total or 0)
            started = True
        reporter.update(task, done)

    outcome = fetch_dryad_file(entry, root, dry_run=dry_run, on_progress=on_progress)
    if started:
        reporter.finish(task)
    result = HumanFetchResult("human", root, [outcome], dry_run)
    if dry_run:
        return result
    # Fresh bytes replace an older extraction; otherwise a complete one is kept.
    fresh = outcome.status in ("downloaded", "resumed")
    extraction = _extract(root, reporter, overwrite=fresh)
    result.extracted = {folder: len(names) for folder, names in extraction.files.items()}
    return result


def segment_human(
    home: Path,
    settings: HumanSettings | None = None,
    *,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
) -> HumanSegmentResult:
    """Build processed/human/<hash>/human.h5 from the extracted files (extracting the archive
    first when only the archive is on disk). Skipped when it exists with these settings."""
    home = Path(home)
    settings = settings or HumanSettings()
    reporter = reporter or SilentReporter()
    started = time.perf_counter()
    directory = human_dir(home, settings)
    if not overwrite and is_prepared(home, settings):
        return _result(directory, settings, "skipped", 0.0)
    root = human_raw_dir(home)
    if not all(competition_files(root, folder) for folder in SPLIT_FOLDERS):
        if not (root / ARCHIVE_NAME).is_file():
            raise DataError(
                f"no competitionData under {root}; run `neuralcli data fetch human` first"
            )
        _extract(root, reporter)
    task = "read day files"
    reporter.start(task, sum(len(competition_files(root, f)) for f in SPLIT_FOLDERS))

    def on_progress(done: int, total: int) -> None:
        reporter.update(task, done)

    prepare_human(home, settings, overwrite=True, on_progress=on_progress)
    reporter.finish(task)
    return _result(directory, settings, "written", time.perf_counter() - started)


def _extract(root: Path, reporter: ProgressReporter, *, overwrite: bool = False) -> ExtractResult:
    task = f"extract {ARCHIVE_NAME}"
    started = False

    def on_progress(done: int, total: int) -> None:
        nonlocal started
        if not started:
            reporter.start(task, total)
            started = True
        reporter.update(task, done)

    extraction = extract_competition_data(
        root / ARCHIVE_NAME, root, overwrite=overwrite, on_progress=on_progress
    )
    if started:
        reporter.finish(task)
    return extraction


def _result(
    directory: Path, settings: HumanSettings, status: str, seconds: float
) -> HumanSegmentResult:
    path = directory / SESSION_FILE
    with open_session(path) as reader:
        splits = np.asarray(reader.segments["split"]).astype(str)
        dropped = reader.attrs.get("n_dropped_longer", {})
    return HumanSegmentResult(
        dataset="human",
        directory=directory,
        settings_hash=settings_hash(human_settings_dict(settings)),
        path=path,
        status=status,
        n_trials={s: int((splits == s).sum()) for s in ("train", "val", "test")},
        n_dropped={str(k): int(v) for k, v in dropped.items()},
        seconds=seconds,
    )
