"""Flint et al. 2012 center-out data (CRCNS "DREAM", monkey C), data-sources §2.

CRCNS shares these files under its terms of use, so neuralcli does not download them by
default: `import_flint` takes the `.mat` files from a folder where the user put them, checks
their published sizes and MATLAB 5 header, and copies (or hard-links) them into
`<home>/raw/flint/` with a MANIFEST.json entry. `fetch_flint_guest` performs the CRCNS guest
login only when the caller states that the terms were accepted.

No checksums are published; sizes come from a third-party listing (§2), so a size check and
the header are the whole verification.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from http.cookiejar import CookieJar
from pathlib import Path
from typing import NamedTuple

from neuralcli.data.download import (
    USER_AGENT,
    FetchProgressFn,
    FileOutcome,
    RemoteFile,
    ensure_free_space,
    fetch_bytes,
    fetch_files,
    is_verified,
    record_manifest,
)
from neuralcli.data.sources import flint
from neuralcli.data.sources.flint import flint_file_name, split_session_key
from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_path

CRCNS_URL_ENV = "NEURALCLI_CRCNS_URL"
# The DREAM listing of Flint_2012; the guest login form posts to the same address (§2).
DEFAULT_CRCNS_URL = "https://portal.nersc.gov/project/crcns/download/dream/data_sets/Flint_2012"
CRCNS_DATASET_PAGE = "https://crcns.org/data-sets/movements/dream"
# Path of the files in the CRCNS download tree, the `fn` query parameter (§2).
FLINT_REMOTE_DIR = "dream/data_sets/Flint_2012"

# File -> bytes (§2; from a third-party listing, no checksums published).
FLINT_FILE_SIZES: dict[str, int] = {
    "Flint_2012_e1.mat": 365_440_251,
    "Flint_2012_e2.mat": 580_620_783,
    "Flint_2012_e3.mat": 1_095_873_686,
    "Flint_2012_e4.mat": 881_613_651,
    "Flint_2012_e5.mat": 563_731_035,
}
MATLAB5_MAGIC = b"MATLAB 5.0 MAT-file"
TERMS_SUMMARY = (
    "CRCNS data are for scientific use only, may not be redistributed, and publications must "
    "credit the data contributors"
)


class FlintSessionLocation(NamedTuple):
    file: str  # Flint_2012_eX.mat
    subject_index: int  # 0-based index into the file's `Subject` struct array


# Session key "eX_k" (k 1-based, as in `MonkeyC_eX_k`) -> where its data is (the key table
# lives with the reader, data/sources/flint.py).
FLINT_SESSIONS: dict[str, FlintSessionLocation] = {
    key: FlintSessionLocation(flint_file_name(experiment), index)
    for key in flint.FLINT_SESSIONS
    for experiment, index in [split_session_key(key)]
}


def check_flint_sessions(names: Sequence[str]) -> list[str]:
    """Canonical session keys ("e2_1") for `names` ("e2_1" or "MonkeyC_e2_1"), in order,
    without repeats; DataError for an unknown one, naming the closest valid keys."""
    sessions: list[str] = []
    for name in names:
        session = name.strip().removeprefix("MonkeyC_")
        if session not in FLINT_SESSIONS:
            close = difflib.get_close_matches(session, list(FLINT_SESSIONS), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise DataError(
                f"unknown Flint session {name!r}; {hint}valid sessions: {', '.join(FLINT_SESSIONS)}"
            )
        if session not in sessions:
            sessions.append(session)
    return sessions


_COPY_CHUNK = 1 << 20


def flint_dir(home: Path) -> Path:
    """`<home>/raw/flint`: the Flint_2012_e*.mat files and MANIFEST.json."""
    return Path(home) / "raw" / "flint"


def crcns_base_url() -> str:
    """`$NEURALCLI_CRCNS_URL`, else the DREAM Flint_2012 listing; no trailing slash."""
    return (os.environ.get(CRCNS_URL_ENV) or DEFAULT_CRCNS_URL).rstrip("/")


def _where_to_get(names: Sequence[str]) -> str:
    return (
        f"expected {', '.join(names)}: download them from CRCNS DREAM ({CRCNS_DATASET_PAGE}; "
        f"files at {DEFAULT_CRCNS_URL}) after accepting its terms"
    )


def import_flint(
    home: Path, source_dir: Path, *, expected_sizes: Mapping[str, int] | None = None
) -> list[FileOutcome]:
    """Copy (hard-link on the same filesystem) the Flint `.mat` files found in `source_dir`
    into `<home>/raw/flint/`, verified, atomically, with MANIFEST.json entries.

    `expected_sizes` (file name -> bytes) replaces the published table (tests use tiny files).
    Every file found is checked (size, MATLAB 5 header) before any is copied; DataError names
    the bad ones, or the expected names and where to get them when none is found. Outcome
    status: "imported", or "skipped" when the manifest already vouches for the file.
    """
    sizes = dict(FLINT_FILE_SIZES if expected_sizes is None else expected_sizes)
    source_dir = Path(source_dir).expanduser()
    if not source_dir.is_dir():
        raise DataError(f"{source_dir} is not a folder; {_where_to_get(list(sizes))}")
    on_disk = {path.name.lower(): path for path in source_dir.iterdir() if path.is_file()}
    found = {name: on_disk[name.lower()] for name in sizes if name.lower() in on_disk}
    if not found:
        raise DataError(f"no Flint 2012 files in {source_dir}; {_where_to_get(list(sizes))}")
    problems = [
        problem for name, path in found.items() if (problem := _check_file(path, sizes[name]))
    ]
    if problems:
        raise DataError(
            "; ".join(problems)
            + f"; download the file again from CRCNS DREAM ({DEFAULT_CRCNS_URL})"
        )
    root = flint_dir(home)
    pending = {
        name: path
        for name, path in found.items()
        if not is_verified(root, name, size=sizes[name], md5=None)
    }
    ensure_free_space(
        root, sum(sizes[name] for name, path in pending.items() if not _same_device(path, root))
    )
    outcomes = []
    for name, path in found.items():
        if name not in pending:
            outcomes.append(FileOutcome(name, sizes[name], "skipped"))
            continue
        md5 = _place(path, root / name)
        record_manifest(
            root, name, url=path.resolve().as_uri(), size=sizes[name], md5=md5, source="import"
        )
        outcomes.append(FileOutcome(name, sizes[name], "imported"))
    return outcomes


def _check_file(path: Path, expected_size: int) -> str | None:
    """Why `path` is not a Flint file of `expected_size` bytes, or None."""
    size = path.stat().st_size
    if size != expected_size:
        return f"{path} has {size} bytes, expected {expected_size}"
    with open(path, "rb") as handle:
        head = handle.read(len(MATLAB5_MAGIC))
    if head != MATLAB5_MAGIC:
        return f"{path} does not start with the MATLAB 5 header ({MATLAB5_MAGIC.decode()!r})"
    return None


def _same_device(path: Path, directory: Path) -> bool:
    probe = directory.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return path.stat().st_dev == probe.stat().st_dev


def _place(source: Path, dest: Path) -> str:
    """Hard-link or copy `source` onto `dest` atomically; the MD5 of the bytes placed."""
    digest = hashlib.md5()
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
            linked = True
        except OSError:  # another filesystem, or links not supported
            linked = False
        if linked:
            with open(tmp, "rb") as handle:
                while chunk := handle.read(_COPY_CHUNK):
                    digest.update(chunk)
        else:
            with open(source, "rb") as reader, open(tmp, "wb") as writer:
                while chunk := reader.read(_COPY_CHUNK):
                    writer.write(chunk)
                    digest.update(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            with contextlib.suppress(OSError):
                shutil.copystat(source, tmp)
    return digest.hexdigest()


def fetch_flint_guest(
    home: Path,
    *,
    accept_terms: bool,
    base_url: str | None = None,
    on_progress: FetchProgressFn | None = None,
    files: Sequence[str] | None = None,
    dry_run: bool = False,
    expected_sizes: Mapping[str, int] | None = None,
    retries: int = 5,
    backoff_seconds: float = 1.0,
) -> list[FileOutcome]:
    """Download Flint `.mat` files (default: all five) as a CRCNS guest into `<home>/raw/flint/`.

    Refuses (DataError) unless `accept_terms`. The guest flow (§2): POST the login form with
    `agree_terms=on` and "Login Anonymously" to the base URL, keeping its cookies, then GET
    `{base}?username=&password=&guest=1&agree_terms=on&submit=Login Anonymously&fn=<path>` per
    file. Sizes are checked against the table (no checksums exist) and each file's MATLAB 5
    header after download. A dry run makes no request.
    """
    if not accept_terms:
        raise DataError(
            f"the Flint 2012 data are shared by CRCNS under its terms of use ({TERMS_SUMMARY}); "
            "the CRCNS terms must be accepted with --accept-terms to download as a guest, or "
            f"download the files yourself from {CRCNS_DATASET_PAGE} and import them"
        )
    sizes = dict(FLINT_FILE_SIZES if expected_sizes is None else expected_sizes)
    names = list(sizes) if files is None else list(files)
    unknown = [name for name in names if name not in sizes]
    if unknown:
        raise DataError(
            f"unknown Flint 2012 file(s) {', '.join(unknown)}; known: {', '.join(sizes)}"
        )
    base = (base_url or crcns_base_url()).rstrip("/")
    remote = [
        RemoteFile(key=name, size=sizes[name], md5=None, url=_guest_url(base, name))
        for name in names
    ]
    root = flint_dir(home)
    if dry_run or all(is_verified(root, f.key, size=f.size, md5=None) for f in remote):
        return fetch_files(remote, root, dry_run=dry_run, source="crcns-guest")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    _guest_login(opener, base, retries=retries, backoff_seconds=backoff_seconds)
    outcomes = fetch_files(
        remote,
        root,
        on_progress=on_progress,
        source="crcns-guest",
        retries=retries,
        backoff_seconds=backoff_seconds,
        opener=opener,
    )
    for outcome in outcomes:
        if outcome.status in ("downloaded", "resumed"):
            path = root / outcome.relative
            problem = _check_file(path, sizes[outcome.relative])
            if problem:
                path.unlink(missing_ok=True)
                raise DataError(
                    f"{problem}; the CRCNS guest download did not return the data file (the "
                    f"login flow may have changed): download it yourself from "
                    f"{CRCNS_DATASET_PAGE} and import it"
                )
    return outcomes


def _guest_form() -> list[tuple[str, str]]:
    return [
        ("username", ""),
        ("password", ""),
        ("guest", "1"),
        ("agree_terms", "on"),
        ("submit", "Login Anonymously"),
    ]


def _guest_url(base: str, name: str) -> str:
    query = urllib.parse.urlencode([*_guest_form(), ("fn", f"{FLINT_REMOTE_DIR}/{name}")])
    return f"{base}?{query}"


def _guest_login(
    opener: urllib.request.OpenerDirector, base: str, *, retries: int, backoff_seconds: float
) -> None:
    """POST the anonymous login form; the session cookie lands in the opener's jar."""
    request = urllib.request.Request(
        base,
        data=urllib.parse.urlencode(_guest_form()).encode("ascii"),
        headers={"User-Agent": USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        fetch_bytes(
            request,
            timeout_seconds=60.0,
            retries=retries,
            backoff_seconds=backoff_seconds,
            opener=opener,
        )
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"the CRCNS guest login at {base} failed (HTTP {exc.code} {exc.reason}); download "
            f"the files yourself from {CRCNS_DATASET_PAGE} and import them"
        ) from None
    except OSError as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DataError(
            f"cannot reach {base} ({reason}); check the network or set {CRCNS_URL_ENV}"
        ) from None
