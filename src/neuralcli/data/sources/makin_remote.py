"""Where the O'Doherty/Makin/Sabes monkey I ("Indy") files live on Zenodo (data-sources §1).

Two kinds of file per session, stored side by side under `<home>/raw/makin/` as the reference
pipeline expects them:

- `indy_<YYYYMMDD_NN>.mat`: sorted spikes and kinematics, all in record 3854034 (§1.1);
- `indy_<YYYYMMDD_NN>.nwb`: broadband, one Zenodo record per session (§1.2).

Which broadband record holds which session is published nowhere, so it is found by listing
the records and matching file names, once: the result (with sizes, checksums and links) is
cached in `raw/makin/records.json`. Published Zenodo records are immutable, so the cache never
goes stale for a given server; changing the server (`NEURALCLI_ZENODO_URL`) ignores it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuralcli.data.download import FetchProgressFn, FileOutcome, RemoteFile, fetch_files
from neuralcli.data.sources.zenodo import get_record, zenodo_base_url
from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_write_text

# The 30 monkey I sessions with broadband, in date order (data-sources §1.3).
MAKIN_SESSIONS: tuple[str, ...] = (
    "20160622_01",
    "20160624_03",
    "20160627_01",
    "20160630_01",
    "20160915_01",
    "20160916_01",
    "20160921_01",
    "20160927_04",
    "20160927_06",
    "20160930_02",
    "20160930_05",
    "20161005_06",
    "20161006_02",
    "20161007_02",
    "20161011_03",
    "20161013_03",
    "20161014_04",
    "20161017_02",
    "20161024_03",
    "20161025_04",
    "20161026_03",
    "20161027_03",
    "20161206_02",
    "20161207_02",
    "20161212_02",
    "20161220_02",
    "20170123_02",
    "20170124_01",
    "20170127_03",
    "20170131_02",
)
# Sorted spikes + kinematics of every session: the record all pipelines fetch (§1.1).
SORTED_RECORD = 3854034
# One broadband record per session, order unknown (§1.2; DOI suffix = record id).
BROADBAND_RECORDS: tuple[int, ...] = (
    1488440,
    1486147,
    1484824,
    1473703,
    1467953,
    1467050,
    1451793,
    1433942,
    1432818,
    1421880,
    1421310,
    1419774,
    1419172,
    1413592,
    1412635,
    1412094,
    1411978,
    1411882,
    1411474,
    1410423,
    1321264,
    1321256,
    1303720,
    1302866,
    1302832,
    1301045,
    1167965,
    1163026,
    1161225,
    854733,
)

RECORDS_FILE = "records.json"
_RECORDS_FORMAT = 1
_SESSION_PREFIXES = ("monkeyi_", "indy_")


def makin_dir(home: Path) -> Path:
    """`<home>/raw/makin`: the .mat and .nwb files, MANIFEST.json and records.json."""
    return Path(home) / "raw" / "makin"


def makin_raw_paths(home: Path, session: str) -> tuple[Path, Path]:
    """(`indy_<s>.mat`, `indy_<s>.nwb`) of one session under `<home>/raw/makin/`."""
    (session,) = check_sessions([session])
    directory = makin_dir(home)
    return directory / f"indy_{session}.mat", directory / f"indy_{session}.nwb"


def check_sessions(names: Sequence[str]) -> list[str]:
    """Canonical session ids ("20160622_01") for `names`, in order, without repeats.

    Accepts "20160622_01", "indy_20160622_01" and "MonkeyI_20160622_01" (any case). DataError
    for an unknown session, naming the closest valid ones.
    """
    sessions: list[str] = []
    for name in names:
        session = name.strip()
        lowered = session.lower()
        for prefix in _SESSION_PREFIXES:
            if lowered.startswith(prefix):
                session = session[len(prefix) :]
                break
        if session not in MAKIN_SESSIONS:
            close = difflib.get_close_matches(session, MAKIN_SESSIONS, n=3, cutoff=0.6)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"valid sessions run from {MAKIN_SESSIONS[0]} to {MAKIN_SESSIONS[-1]}"
            )
            raise DataError(
                f"unknown monkey I session {name!r}; {hint} (the {len(MAKIN_SESSIONS)} sessions "
                "with broadband are listed in neuralcli.data.sources.makin_remote.MAKIN_SESSIONS)"
            )
        if session not in sessions:
            sessions.append(session)
    return sessions


def plan_makin(
    home: Path,
    sessions: Sequence[str] | None,
    *,
    broadband: bool = True,
    base_url: str | None = None,
    write_cache: bool = True,
) -> list[RemoteFile]:
    """The files of `sessions` (None: all 30): every `.mat`, then every `.nwb` when `broadband`.

    Keys are relative to `<home>/raw/makin/`. Record listings are fetched only for what
    records.json does not already know, and the broadband records are listed only until every
    requested session is found. `write_cache=False` leaves records.json untouched.
    """
    sessions = check_sessions(MAKIN_SESSIONS if sessions is None else sessions)
    base = (base_url or zenodo_base_url()).rstrip("/")
    cache_path = makin_dir(home) / RECORDS_FILE
    cache = _read_cache(cache_path, base)
    before = json.dumps(cache, sort_keys=True)
    try:
        _resolve_sorted(cache, sessions, base)
        if broadband:
            _resolve_broadband(cache, sessions, base)
    finally:  # keep what was learned even when a later listing fails
        if write_cache and json.dumps(cache, sort_keys=True) != before:
            atomic_write_text(cache_path, json.dumps(cache, indent=2, sort_keys=True) + "\n")
    files = [_remote(f"indy_{s}.mat", cache["sorted"][s]) for s in sessions]
    if broadband:
        files += [_remote(f"indy_{s}.nwb", cache["broadband"][s]) for s in sessions]
    return files


def fetch_makin(
    home: Path,
    sessions: Sequence[str] | None,
    *,
    broadband: bool = True,
    dry_run: bool = False,
    base_url: str | None = None,
    on_progress: FetchProgressFn | None = None,
) -> list[FileOutcome]:
    """Download (or, with `dry_run`, only plan) the files of `sessions` into `<home>/raw/makin/`.

    Verified files are skipped; interrupted ones resume. A dry run still lists records that
    records.json does not know, but writes nothing.
    """
    files = plan_makin(
        home, sessions, broadband=broadband, base_url=base_url, write_cache=not dry_run
    )
    return fetch_files(
        files, makin_dir(home), dry_run=dry_run, on_progress=on_progress, source="zenodo"
    )


def _remote(key: str, entry: dict[str, Any]) -> RemoteFile:
    return RemoteFile(key=key, size=entry["size"], md5=entry["md5"], url=entry["url"])


def _entry(remote: RemoteFile, record_id: int) -> dict[str, Any]:
    return {
        "record": record_id,
        "key": remote.key,
        "size": remote.size,
        "md5": remote.md5,
        "url": remote.url,
    }


def _read_cache(path: Path, base: str) -> dict[str, Any]:
    empty: dict[str, Any] = {
        "format_version": _RECORDS_FORMAT,
        "base_url": base,
        "sorted_record": SORTED_RECORD,
        "sorted": {},
        "broadband": {},
        "listed_broadband": [],
    }
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty  # a missing or unreadable cache only costs a few listing requests
    if (
        not isinstance(cache, dict)
        or cache.get("format_version") != _RECORDS_FORMAT
        or cache.get("base_url") != base
        or cache.get("sorted_record") != SORTED_RECORD
    ):
        return empty
    for name, kind in (("sorted", dict), ("broadband", dict), ("listed_broadband", list)):
        if not isinstance(cache.get(name), kind):
            return empty
    return cache


def _resolve_sorted(cache: dict[str, Any], sessions: Sequence[str], base: str) -> None:
    """Fill cache["sorted"] from the listing of SORTED_RECORD when a session is missing."""
    if all(s in cache["sorted"] for s in sessions):
        return
    record = get_record(SORTED_RECORD, base_url=base)
    by_name = {remote.key.lower(): remote for remote in record.files}
    for session in MAKIN_SESSIONS:
        remote = by_name.get(f"indy_{session}.mat")
        if remote is not None:
            cache["sorted"][session] = _entry(remote, SORTED_RECORD)
    missing = [s for s in sessions if s not in cache["sorted"]]
    if missing:
        raise DataError(
            f"Zenodo record {SORTED_RECORD} lists no indy_<session>.mat for "
            f"{', '.join(missing)}; check {base} (NEURALCLI_ZENODO_URL) or drop those sessions"
        )


def _resolve_broadband(cache: dict[str, Any], sessions: Sequence[str], base: str) -> None:
    """List broadband records not yet listed until every session in `sessions` is found."""
    listed = set(cache["listed_broadband"])
    for record_id in BROADBAND_RECORDS:
        if all(s in cache["broadband"] for s in sessions):
            break
        if record_id in listed:
            continue
        record = get_record(record_id, base_url=base)
        for remote in record.files:
            session = _session_of_nwb(remote.key)
            if session is not None and session not in cache["broadband"]:
                cache["broadband"][session] = _entry(remote, record_id)
        cache["listed_broadband"].append(record_id)
        listed.add(record_id)
    missing = [s for s in sessions if s not in cache["broadband"]]
    if missing:
        raise DataError(
            f"none of the {len(BROADBAND_RECORDS)} broadband records on {base} holds an .nwb "
            f"for {', '.join(missing)}; fetch without broadband (sorted .mat only) or drop "
            "those sessions"
        )


def _session_of_nwb(key: str) -> str | None:
    """The known session whose id a broadband file name contains ("indy_20160622_01.nwb")."""
    lowered = key.lower()
    if not lowered.endswith(".nwb"):
        return None
    for session in MAKIN_SESSIONS:
        if session in lowered:
            return session
    return None
