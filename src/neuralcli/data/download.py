"""Verified, resumable downloads over plain HTTP(S), with a manifest of what is on disk.

A file is streamed into `<dest>.part` beside its destination. An interrupted download keeps
the part file; the next attempt (in this process or a later run) asks the server for the rest
with `Range: bytes=N-` and feeds the bytes already on disk to the MD5 first, so the checksum
always covers the whole file. Only a file whose size and MD5 match the archive's listing is
renamed onto its final name, so a file under its final name is always complete.

Each download root holds `MANIFEST.json`: relative path -> {url, size, md5, fetched_at, source}.
A later run trusts an entry whose md5/size match the listing and whose file still has that
size, without re-hashing (hashing hundreds of GB of broadband takes longer than listing).

Only the standard library speaks HTTP here (urllib.request / http.client).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import hashlib
import http.client
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import IO, Any, NamedTuple

from neuralcli import __version__
from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_write_text

try:  # advisory lock so that two runs never append to one part file; POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

MANIFEST_FILE = "MANIFEST.json"
PART_SUFFIX = ".part"
USER_AGENT = f"neuralcli/{__version__} (+urllib)"

# Tests replace this to make backoff instant.
_sleep = time.sleep

_CHUNK_BYTES = 1 << 20
_MAX_BACKOFF_SECONDS = 60.0
# Transient by definition even though they are 4xx: request timeout and rate limiting.
_RETRYABLE_4XX = (408, 429)

ProgressFn = Callable[[int, "int | None"], None]  # (bytes on disk, total bytes or None)
FetchProgressFn = Callable[[str, int, "int | None"], None]  # (relative path, done, total)


class RemoteFile(NamedTuple):
    """One file of a remote listing."""

    key: str  # path relative to the download root, "/"-separated
    size: int | None  # bytes, when the listing gives it
    md5: str | None  # lower-case hex, when the listing gives it
    url: str


class DownloadResult(NamedTuple):
    path: Path
    size: int  # bytes
    md5: str  # lower-case hex of the whole file
    resumed: bool  # bytes kept from an earlier, interrupted attempt were reused
    attempts: int  # HTTP requests made for the body


class FileOutcome(NamedTuple):
    relative: str  # path relative to the download root
    size: int | None  # bytes (None when planned and the listing gives no size)
    status: str  # "downloaded" | "resumed" | "skipped" | "planned" ("imported" for local copies)


class _Transient(Exception):
    """A failure worth retrying: 5xx, 408/429, network error, timeout, cut body."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def format_bytes(n_bytes: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as archives list sizes)."""
    value = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def part_path(dest: Path) -> Path:
    """Where `dest` is streamed while incomplete: `<dest>.part`."""
    return dest.with_name(dest.name + PART_SUFFIX)


# --------------------------------------------------------------------------- paths and space


def safe_destination(root: Path, relative: str) -> Path:
    """`root / relative`, refusing any name that could land outside `root`.

    DataError for an absolute path, a drive, an empty name or component, `.` or `..`
    components, or a path that resolves (through symlinks) outside `root`.
    """
    if not relative or not relative.strip():
        raise DataError(f"refusing an empty file name in a listing for {root}")
    if relative.startswith(("/", "\\")) or PureWindowsPath(relative).drive:
        raise DataError(f"refusing absolute file name {relative!r} in a listing for {root}")
    parts = relative.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") or not part.strip() for part in parts):
        raise DataError(
            f"refusing file name {relative!r} in a listing for {root}: "
            "empty, '.' or '..' path components"
        )
    dest = Path(root).joinpath(*parts)
    root_resolved = Path(root).resolve()
    if not dest.resolve().is_relative_to(root_resolved):
        raise DataError(f"refusing file name {relative!r}: it resolves outside {root_resolved}")
    return dest


def ensure_free_space(directory: Path, needed_bytes: int) -> None:
    """DataError when the disk holding `directory` has less than `needed_bytes` free.

    `directory` need not exist yet: its nearest existing parent is measured.
    """
    if needed_bytes <= 0:
        return
    probe = Path(directory).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed_bytes > free:
        raise DataError(
            f"not enough free disk space for {directory}: need {format_bytes(needed_bytes)}, "
            f"{format_bytes(free)} available; free some space, fetch fewer sessions, or point "
            "--home / NEURALCLI_HOME at a larger disk"
        )


# --------------------------------------------------------------------------- manifest


def read_manifest(root: Path) -> dict[str, dict[str, Any]]:
    """`root/MANIFEST.json` as {relative path: entry}; {} when there is none."""
    path = Path(root) / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not valid JSON ({exc}); delete it and fetch again "
            "(files on disk are then re-downloaded or re-verified)"
        ) from None
    if not isinstance(manifest, dict):
        raise DataError(f"{path} is not a JSON object; delete it and fetch again")
    return manifest


def record_manifest(
    root: Path, relative: str, *, url: str, size: int, md5: str, source: str
) -> None:
    """Add or replace the entry for `relative` in `root/MANIFEST.json` (atomic rewrite)."""
    manifest = read_manifest(root)
    manifest[relative] = {
        "url": url,
        "size": int(size),
        "md5": md5.lower(),
        "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write_text(Path(root) / MANIFEST_FILE, text)


def is_verified(root: Path, relative: str, *, size: int | None, md5: str | None) -> bool:
    """True when the manifest vouches for `relative` with this size/md5 and the file on disk
    still has that size. Does not re-hash: that is what the manifest is for."""
    return _entry_matches(read_manifest(root), Path(root), relative, size=size, md5=md5)


def _entry_matches(
    manifest: Mapping[str, Any], root: Path, relative: str, *, size: int | None, md5: str | None
) -> bool:
    entry = manifest.get(relative)
    if not isinstance(entry, dict):
        return False
    if md5 is not None and str(entry.get("md5", "")).lower() != _normal_md5(md5):
        return False
    if size is not None and entry.get("size") != size:
        return False
    try:
        on_disk = (root / relative).stat().st_size
    except OSError:
        return False
    return on_disk == entry.get("size")


def _normal_md5(md5: str) -> str:
    md5 = md5.strip().lower()
    return md5.removeprefix("md5:")


# --------------------------------------------------------------------------- HTTP


def _request(url: str, headers: Mapping[str, str] | None = None) -> urllib.request.Request:
    return urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **(headers or {})})


def _retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        if when is None:
            return None
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _backoff(attempt: int, backoff_seconds: float, retry_after: float | None) -> float:
    delay = backoff_seconds * 2 ** (attempt - 1)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, _MAX_BACKOFF_SECONDS)


def _open(
    request: urllib.request.Request,
    *,
    timeout_seconds: float,
    opener: urllib.request.OpenerDirector | None,
) -> http.client.HTTPResponse:
    """Open `request`; _Transient for failures worth retrying, HTTPError for the rest."""
    try:
        if opener is not None:
            return opener.open(request, timeout=timeout_seconds)
        return urllib.request.urlopen(request, timeout=timeout_seconds)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in _RETRYABLE_4XX:
            exc.close()
            raise _Transient(
                f"HTTP {exc.code} {exc.reason}", retry_after=_retry_after_seconds(exc.headers)
            ) from exc
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ssl.SSLCertVerificationError):  # retrying cannot help
            raise DataError(
                f"cannot verify the TLS certificate of {request.full_url} ({reason}); update "
                "the system's CA certificates or point SSL_CERT_FILE at a CA bundle"
            ) from None
        raise _Transient(f"{type(exc).__name__}: {reason}") from exc


def fetch_bytes(
    request: str | urllib.request.Request,
    *,
    timeout_seconds: float = 30.0,
    retries: int = 3,
    backoff_seconds: float = 1.0,
    opener: urllib.request.OpenerDirector | None = None,
) -> bytes:
    """The whole body of a small document (a listing, a JSON record), retrying transient
    failures (5xx, 408/429, network errors, timeouts) up to `retries` times.

    Raises urllib.error.HTTPError for any other status, and OSError (a URLError, or the HTTP
    error of the last attempt) once retries are exhausted; callers turn both into DataError.
    """
    if isinstance(request, str):
        request = _request(request)
    for attempt in range(1, retries + 2):
        try:
            with _open(request, timeout_seconds=timeout_seconds, opener=opener) as response:
                try:
                    return response.read()
                except (http.client.HTTPException, OSError) as exc:
                    raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        except _Transient as exc:
            if attempt > retries:
                cause = exc.__cause__
                raise cause if isinstance(cause, OSError) else OSError(str(exc)) from exc
            _sleep(_backoff(attempt, backoff_seconds, exc.retry_after))
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- one file


class _Part:
    """The open part file with the MD5 state and length of what it holds.

    Kept as one mutable object so that a failure mid-body never leaves the checksum and the
    file out of step; the bytes already on disk are hashed once per call, not per attempt.
    """

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.md5()
        self.done = 0
        handle.seek(0)
        while chunk := handle.read(_CHUNK_BYTES):
            self.digest.update(chunk)
            self.done += len(chunk)

    def restart(self) -> None:
        self.handle.seek(0)
        self.handle.truncate()
        self.digest = hashlib.md5()
        self.done = 0

    def append(self, chunk: bytes) -> None:
        try:
            self.handle.write(chunk)  # "a+b": always at the end
        except OSError as exc:
            raise DataError(f"cannot write {self.handle.name}: {exc}") from exc
        self.digest.update(chunk)
        self.done += len(chunk)


@contextlib.contextmanager
def _locked_part(part: Path) -> Iterator[IO[bytes]]:
    """The part file opened for appending (created if missing), locked against other runs.

    On an error the part file is kept for resuming, unless it is still empty.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    handle = open(part, "a+b")  # closed below, before any rename or unlink
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise DataError(
                f"{part} is being written by another neuralcli process; wait for it to "
                "finish (or stop it) and run again"
            ) from None
    try:
        yield handle
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            if part.stat().st_size == 0:
                part.unlink()
        raise
    finally:
        handle.close()


def _content_range(headers: Any) -> tuple[int | None, int | None]:
    """('bytes 100-199/1000' -> (100, 1000)); ('bytes */1000' -> (None, 1000))."""
    value = (headers.get("Content-Range") or "").strip() if headers is not None else ""
    unit, _, spec = value.partition(" ")
    if unit.lower() != "bytes" or "/" not in spec:
        return None, None
    span, _, total = spec.partition("/")
    start = span.partition("-")[0]
    return (
        int(start) if start.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


def download_file(
    url: str,
    dest: Path,
    *,
    size: int | None,
    md5: str | None,
    retries: int = 5,
    backoff_seconds: float = 1.0,
    timeout_seconds: float = 60.0,
    on_progress: ProgressFn | None = None,
    opener: urllib.request.OpenerDirector | None = None,
) -> DownloadResult:
    """Download `url` to `dest`, resuming `<dest>.part`, verifying `size` and `md5`.

    Transient failures (5xx, 408/429, connection errors, timeouts, a body cut short) are
    retried with exponential backoff `backoff_seconds * 2**k`; `retries` bounds consecutive
    failed attempts that brought no new bytes, so a long file over a flaky link still
    finishes. The part file survives every failure except a size or checksum mismatch, which
    deletes it and raises DataError. Other 4xx statuses raise DataError at once.
    `opener` carries state such as a cookie jar for archives that need a login.
    """
    dest = Path(dest)
    part_file = part_path(dest)
    expected_md5 = _normal_md5(md5) if md5 else None
    attempts = 0
    failures = 0
    resumed = False
    with _locked_part(part_file) as handle:
        part = _Part(handle)
        if size is not None and part.done > size:
            part.restart()
        while True:
            if size is not None and part.done == size:
                resumed = resumed or attempts == 0  # complete before any request
                break
            attempts += 1
            before = part.done
            try:
                finished, was_resumed = _transfer(
                    url,
                    part,
                    size=size,
                    timeout_seconds=timeout_seconds,
                    on_progress=on_progress,
                    opener=opener,
                )
            except _Transient as exc:
                failures = 0 if part.done > before else failures + 1
                if failures > retries:
                    raise DataError(
                        f"could not download {dest.name} from {url} after {attempts} attempts "
                        f"({exc}); {format_bytes(part.done)} kept in {part_file}: run the "
                        "command again to resume"
                    ) from None
                _sleep(_backoff(max(failures, 1), backoff_seconds, exc.retry_after))
                continue
            resumed = resumed or was_resumed
            if finished:
                break
        handle.flush()
        os.fsync(handle.fileno())
    got_md5 = part.digest.hexdigest()
    mismatch = None
    if size is not None and part.done != size:
        mismatch = f"size mismatch: expected {size} bytes, got {part.done}"
    elif expected_md5 is not None and got_md5 != expected_md5:
        mismatch = f"checksum mismatch: expected md5 {expected_md5}, got {got_md5}"
    if mismatch is not None:
        part_file.unlink(missing_ok=True)
        raise DataError(
            f"{dest.name} from {url}: {mismatch}; the partial file was deleted, run the "
            "command again (if it repeats, the archive's copy may be damaged)"
        )
    os.replace(part_file, dest)
    return DownloadResult(
        path=dest, size=part.done, md5=got_md5, resumed=resumed, attempts=attempts
    )


def _transfer(
    url: str,
    part: _Part,
    *,
    size: int | None,
    timeout_seconds: float,
    on_progress: ProgressFn | None,
    opener: urllib.request.OpenerDirector | None,
) -> tuple[bool, bool]:
    """One request appending the body to `part`: returns (finished, resumed).

    finished is False when the server's answer showed the part file was not a prefix of the
    file (it is then emptied) and the caller should ask again from byte 0. Raises _Transient
    on failures worth retrying, DataError on a 4xx status.
    """
    headers = {"Range": f"bytes={part.done}-"} if part.done else {}
    try:
        response = _open(_request(url, headers), timeout_seconds=timeout_seconds, opener=opener)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and part.done:
            _, total = _content_range(exc.headers)
            if total == part.done and (size is None or size == part.done):
                return True, True  # the part already holds the whole file
            part.restart()
            return False, False
        raise DataError(
            f"download of {url} failed: HTTP {exc.code} {exc.reason}; check the URL or the "
            "archive's access rules (this is not retried)"
        ) from None
    with response:
        resumed = False
        if part.done and response.status == 206:
            start, _ = _content_range(response.headers)
            if start != part.done:
                part.restart()
                raise _Transient(f"the server answered a different range (start {start})")
            resumed = True
        elif part.done:  # a 200 to a Range request: the whole file comes again
            part.restart()
        length_header = response.headers.get("Content-Length")
        expected_body = int(length_header) if length_header and length_header.isdigit() else None
        total = size
        if total is None and expected_body is not None:
            total = part.done + expected_body
        if on_progress is not None:
            on_progress(part.done, total)
        received = 0
        while True:
            try:
                chunk = response.read(_CHUNK_BYTES)
            except (http.client.HTTPException, OSError) as exc:
                raise _Transient(f"connection lost after {part.done} bytes ({exc})") from exc
            if not chunk:
                break
            part.append(chunk)
            received += len(chunk)
            if on_progress is not None:
                on_progress(part.done, total)
    if expected_body is not None and received < expected_body:
        # http.client returns b"" when the peer closes early instead of raising.
        raise _Transient(f"connection cut after {part.done} bytes")
    if expected_body is None and size is not None and part.done < size:
        raise _Transient(f"the body ended after {part.done} of {size} bytes")
    return True, resumed


# --------------------------------------------------------------------------- many files


def fetch_files(
    files: Sequence[RemoteFile],
    root: Path,
    *,
    dry_run: bool = False,
    on_progress: FetchProgressFn | None = None,
    source: str = "",
    retries: int = 5,
    backoff_seconds: float = 1.0,
    timeout_seconds: float = 60.0,
    opener: urllib.request.OpenerDirector | None = None,
) -> list[FileOutcome]:
    """Bring every file of `files` under `root`, recording each in `root/MANIFEST.json`.

    All keys are checked with `safe_destination` before any request. Files the manifest
    vouches for are skipped; a file already at its final name but not in the manifest is
    re-hashed and adopted when it matches. Free space for what is still missing (minus bytes
    already in `.part` files) is checked before the first download. `dry_run` makes no
    request and writes nothing: every missing file is reported as "planned".
    `on_progress(relative, bytes_done, total)` is called while each file streams.
    """
    root = Path(root)
    destinations = [safe_destination(root, remote.key) for remote in files]
    manifest = read_manifest(root)
    outcomes: list[FileOutcome | None] = []
    pending: list[tuple[int, RemoteFile, Path]] = []
    for index, (remote, dest) in enumerate(zip(files, destinations, strict=True)):
        if _entry_matches(manifest, root, remote.key, size=remote.size, md5=remote.md5):
            outcomes.append(FileOutcome(remote.key, manifest[remote.key]["size"], "skipped"))
        elif not dry_run and _adopt_existing(root, remote, dest, source):
            outcomes.append(FileOutcome(remote.key, remote.size, "skipped"))
        else:
            outcomes.append(None)
            pending.append((index, remote, dest))
    if dry_run:
        for index, remote, _ in pending:
            outcomes[index] = FileOutcome(remote.key, remote.size, "planned")
        return [outcome for outcome in outcomes if outcome is not None]
    needed = 0
    for _, remote, dest in pending:
        if remote.size is not None:
            part = part_path(dest)
            in_part = part.stat().st_size if part.is_file() else 0
            needed += max(0, remote.size - in_part)
    ensure_free_space(root, needed)
    for index, remote, dest in pending:
        progress = None
        if on_progress is not None:

            def progress(done: int, total: int | None, key: str = remote.key) -> None:
                on_progress(key, done, total)

        result = download_file(
            remote.url,
            dest,
            size=remote.size,
            md5=remote.md5,
            retries=retries,
            backoff_seconds=backoff_seconds,
            timeout_seconds=timeout_seconds,
            on_progress=progress,
            opener=opener,
        )
        record_manifest(
            root, remote.key, url=remote.url, size=result.size, md5=result.md5, source=source
        )
        status = "resumed" if result.resumed else "downloaded"
        outcomes[index] = FileOutcome(remote.key, result.size, status)
    return [outcome for outcome in outcomes if outcome is not None]


def _adopt_existing(root: Path, remote: RemoteFile, dest: Path, source: str) -> bool:
    """Record a complete file found at its final name when its md5 matches the listing."""
    if remote.md5 is None or not dest.is_file():
        return False
    if remote.size is not None and dest.stat().st_size != remote.size:
        return False
    got_md5 = md5_of_file(dest)
    if got_md5 != _normal_md5(remote.md5):
        return False
    size = dest.stat().st_size
    record_manifest(root, remote.key, url=remote.url, size=size, md5=got_md5, source=source)
    return True


def md5_of_file(path: Path) -> str:
    """Lower-case hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
