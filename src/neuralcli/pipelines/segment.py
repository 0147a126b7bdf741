"""`neuralcli data segment` and the synthetic-reach simulation: raw sessions -> session files.

Each session is processed on its own (in a worker process with `workers` > 1) and written
atomically, so an interrupted run keeps every finished session and the next run skips them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuralcli.data.flint_dataset import FlintSettings, build_flint_recording, flint_settings_dict
from neuralcli.data.makin_dataset import MakinSettings, build_makin_recording, makin_settings_dict
from neuralcli.data.paired import read_paired_summary
from neuralcli.data.paired_processing import (
    is_stored,
    normalise_and_segment,
    session_file,
    store_session,
)
from neuralcli.data.segment import SegmentedSession, segment_recording
from neuralcli.data.sources.flint import read_flint_file
from neuralcli.data.sources.flint_remote import FLINT_SESSIONS, check_flint_sessions, flint_dir
from neuralcli.data.sources.makin_remote import MAKIN_SESSIONS, check_sessions, makin_raw_paths
from neuralcli.data.sources.synthetic_reach import simulate_session
from neuralcli.data.store import processed_dir, settings_hash
from neuralcli.data.synthetic_reach_dataset import (
    SyntheticReachDatasetSettings,
    synthetic_reach_settings_dict,
)
from neuralcli.errors import DataError
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter

DEFAULT_MAX_MEMORY = 2 * 1024**3


@dataclass
class SessionOutcome:
    session: str
    path: Path
    status: str  # "written" | "skipped" (already on disk with these settings)
    n_segments: dict[str, int]  # per split
    n_channels: int
    n_units: int
    seconds: float  # wall time spent on it


@dataclass
class SegmentResult:
    dataset: str
    directory: Path
    settings_hash: str
    sessions: list[SessionOutcome]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "directory": str(self.directory),
            "settings_hash": self.settings_hash,
            "sessions": [
                {**vars(s), "path": str(s.path), "seconds": round(s.seconds, 2)}
                for s in self.sessions
            ],
        }


def segment_makin(
    home: str | os.PathLike,
    settings: MakinSettings | None = None,
    sessions: Sequence[str] | None = None,
    *,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY,
    workers: int = 1,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
) -> SegmentResult:
    """Segment Makin sessions (default: every session whose raw files are on disk)."""
    home = Path(home)
    settings = settings or MakinSettings()
    reporter = reporter or SilentReporter()
    settings_dict = makin_settings_dict(settings)
    names = _makin_sessions(home, sessions, settings.with_lfp)
    todo = [s for s in names if overwrite or not is_stored(home, "makin", settings_dict, s)]
    outcomes = {s: _skipped(home, "makin", settings_dict, s) for s in names if s not in todo}
    workers = max(1, min(workers, len(todo) or 1))
    budget = max_memory_bytes // workers
    if workers == 1:
        for session in todo:
            outcomes[session] = _segment_makin_session(
                home, session, settings, budget, _bar(reporter, session)
            )
    else:
        reporter.start("sessions", len(todo))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_segment_makin_session, home, s, settings, budget, None): s
                for s in todo
            }
            for done, future in enumerate(as_completed(futures), start=1):
                outcomes[futures[future]] = future.result()
                reporter.update("sessions", done)
        reporter.finish("sessions")
    return _result(home, "makin", settings_dict, [outcomes[s] for s in names])


def segment_flint(
    home: str | os.PathLike,
    settings: FlintSettings | None = None,
    sessions: Sequence[str] | None = None,
    *,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
) -> SegmentResult:
    """Segment Flint sessions (default: every session whose file is on disk).

    A Flint file holds several sessions and is read whole (MATLAB v5), so sessions are
    grouped by file and each file is read once.
    """
    home = Path(home)
    settings = settings or FlintSettings()
    reporter = reporter or SilentReporter()
    settings_dict = flint_settings_dict(settings)
    names = _flint_sessions(home, sessions)
    outcomes: dict[str, SessionOutcome] = {}
    by_file: dict[str, list[str]] = {}
    for session in names:
        if not overwrite and is_stored(home, "flint", settings_dict, session):
            outcomes[session] = _skipped(home, "flint", settings_dict, session)
        else:
            by_file.setdefault(FLINT_SESSIONS[session].file, []).append(session)
    reporter.start("flint sessions", len(names))
    reporter.update("flint sessions", len(outcomes))
    for file_name, wanted in by_file.items():
        started = time.perf_counter()
        raw_sessions = {s.key: s for s in read_flint_file(flint_dir(home) / file_name)}
        for session in wanted:
            raw = raw_sessions[session]
            if raw.gaps > settings.max_gap_seconds:
                reporter.message(
                    f"flint {session}: trials are up to {raw.gaps:.3f} s apart; they are "
                    "concatenated as if contiguous, as in the original pipeline"
                )
            recording = build_flint_recording(raw, settings)
            segmented = normalise_and_segment(
                recording, settings.segment, zscore_statistics=settings.zscore_statistics
            )
            path = store_session(
                home,
                "flint",
                settings_dict,
                segmented,
                attrs={"source_file": file_name, "max_trial_gap_seconds": float(raw.gaps)},
            )
            outcomes[session] = _outcome(segmented, path, "written", time.perf_counter() - started)
            started = time.perf_counter()
            reporter.update("flint sessions", len(outcomes))
    reporter.finish("flint sessions")
    return _result(home, "flint", settings_dict, [outcomes[s] for s in names])


def prepare_synthetic_reach(
    home: str | os.PathLike,
    settings: SyntheticReachDatasetSettings | None = None,
    *,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
) -> SegmentResult:
    """Simulate and segment every synthetic-reach session not yet on disk."""
    home = Path(home)
    settings = settings or SyntheticReachDatasetSettings()
    reporter = reporter or SilentReporter()
    settings_dict = synthetic_reach_settings_dict(settings)
    n = settings.simulation.n_sessions
    outcomes = []
    reporter.start("simulate sessions", n)
    for index in range(n):
        started = time.perf_counter()
        name = f"s{index:02d}"
        if not overwrite and is_stored(home, "synthetic-reach", settings_dict, name):
            outcomes.append(_skipped(home, "synthetic-reach", settings_dict, name))
        else:
            recording = simulate_session(settings.simulation, index)
            segmented = segment_recording(recording, settings.segment)
            path = store_session(home, "synthetic-reach", settings_dict, segmented)
            outcomes.append(_outcome(segmented, path, "written", time.perf_counter() - started))
        reporter.update("simulate sessions", index + 1)
    reporter.finish("simulate sessions")
    return _result(home, "synthetic-reach", settings_dict, outcomes)


def _segment_makin_session(
    home: Path,
    session: str,
    settings: MakinSettings,
    max_memory_bytes: int,
    on_progress: Callable[[int, int], None] | None,
) -> SessionOutcome:
    started = time.perf_counter()
    mat_path, nwb_path = makin_raw_paths(home, session)
    settings_dict = makin_settings_dict(settings)
    base = processed_dir(home, "makin", settings_dict).parent
    base.mkdir(parents=True, exist_ok=True)
    # The decimated intermediate lives beside the output, never in RAM; removed on any exit.
    workdir = Path(tempfile.mkdtemp(prefix=f".work-{session}-", dir=base))
    try:
        recording = build_makin_recording(
            mat_path,
            nwb_path if settings.with_lfp else None,
            settings,
            session=session,
            max_memory_bytes=max_memory_bytes,
            workdir=workdir,
            on_progress=on_progress,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    segmented = normalise_and_segment(
        recording, settings.segment, zscore_statistics=settings.zscore_statistics
    )
    del recording  # the continuous streams; only the segments are written
    path = store_session(
        home,
        "makin",
        settings_dict,
        segmented,
        attrs={"source_files": [mat_path.name] + ([nwb_path.name] if settings.with_lfp else [])},
    )
    return _outcome(segmented, path, "written", time.perf_counter() - started)


def _makin_sessions(home: Path, sessions: Sequence[str] | None, with_lfp: bool) -> list[str]:
    """The requested sessions (validated), or every session whose raw files are present."""
    if sessions:
        names = check_sessions(sessions)
    else:
        names = [s for s in MAKIN_SESSIONS if makin_raw_paths(home, s)[0].is_file()]
        if not names:
            raise DataError(
                f"no Makin sessions under {home / 'raw' / 'makin'}; run "
                "`neuralcli data fetch makin --sessions 20160622_01` first"
            )
    for name in names:
        mat_path, nwb_path = makin_raw_paths(home, name)
        missing = [p for p in (mat_path, nwb_path if with_lfp else None) if p and not p.is_file()]
        if missing:
            hint = "" if with_lfp else " --no-broadband"
            raise DataError(
                f"{missing[0]} is missing; run `neuralcli data fetch makin --sessions {name}"
                f"{hint}` first"
                + ("" if not with_lfp else " (or segment without LFP: --set with_lfp=false)")
            )
    return names


def _flint_sessions(home: Path, sessions: Sequence[str] | None) -> list[str]:
    """The requested sessions (validated), or every session whose file is present."""
    if sessions:
        names = check_flint_sessions(sessions)
    else:
        names = [name for name in FLINT_SESSIONS if _flint_file(home, name).is_file()]
        if not names:
            raise DataError(
                f"no Flint files under {flint_dir(home)}; run `neuralcli data fetch flint "
                "--from <folder with Flint_2012_e*.mat>` first"
            )
    for name in names:
        path = _flint_file(home, name)
        if not path.is_file():
            raise DataError(
                f"{path} is missing (session {name}); run `neuralcli data fetch flint --from "
                "<folder>` or `neuralcli data fetch flint --accept-terms` first"
            )
    return names


def _flint_file(home: Path, session: str) -> Path:
    return flint_dir(home) / FLINT_SESSIONS[session].file


def _bar(reporter: ProgressReporter, session: str) -> Callable[[int, int], None]:
    task = f"{session} broadband"
    started = False

    def on_progress(done: int, total: int) -> None:
        nonlocal started
        if not started:
            reporter.start(task, total)
            started = True
        reporter.update(task, done)
        if done >= total:
            reporter.finish(task)

    return on_progress


def _outcome(
    segmented: SegmentedSession, path: Path, status: str, seconds: float
) -> SessionOutcome:
    splits = np.asarray(segmented.segments["split"]).astype(str)
    return SessionOutcome(
        session=segmented.session,
        path=path,
        status=status,
        n_segments={s: int((splits == s).sum()) for s in ("train", "val", "test")},
        n_channels=len(segmented.channel_names),
        n_units=len(segmented.unit_names),
        seconds=seconds,
    )


def _skipped(
    home: Path, dataset: str, settings_dict: dict[str, Any], session: str
) -> SessionOutcome:
    path = session_file(processed_dir(home, dataset, settings_dict), session)
    summary = read_paired_summary(path)
    return SessionOutcome(
        session=session,
        path=path,
        status="skipped",
        n_segments=dict(summary.n_segments),
        n_channels=summary.n_channels,
        n_units=summary.n_units,
        seconds=0.0,
    )


def _result(
    home: Path, dataset: str, settings_dict: dict[str, Any], outcomes: list[SessionOutcome]
) -> SegmentResult:
    return SegmentResult(
        dataset=dataset,
        directory=processed_dir(home, dataset, settings_dict),
        settings_hash=settings_hash(settings_dict),
        sessions=outcomes,
    )
