"""Where the Willett et al. 2023 archive comes from: Dryad's public API v2 (data-sources §4).

The public API needs no account for published datasets (Dryad's API documentation):

    GET {base}/api/v2/datasets/{url-encoded DOI}  -> _links["stash:version"]: the latest version
    GET {base}/api/v2/versions/{id}/files         -> _embedded["stash:files"]: per file its path,
                                                     size, digest, digestType and
                                                     _links["stash:download"]; next page in
                                                     _links.next
    GET {base}/api/v2/files/{id}/download         -> the bytes (may redirect to storage)

`NEURALCLI_DRYAD_URL` replaces the base (a mirror or a test server). What could not be
confirmed against the live service is handled defensively: the digest algorithm is read from
each entry's `digestType` (md5 is verified while streaming, the sha family after the download,
an entry without a digest by its size alone); a missing `stash:download` link falls back to the
file's `self` link + `/download`; the dataset version is the latest unless `version_id` names one.

A download goes through `download_file` (a `.part` file resumed with `Range`, retries with
backoff, size and checksum checks) and is recorded in the download root's MANIFEST.json. For a
sha-family digest the listing entry is also written beside the file (`<name>.dryad.json`), so a
later run skips the file only when the listing still names the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from neuralcli.data.download import (
    USER_AGENT,
    FileOutcome,
    ProgressFn,
    download_file,
    ensure_free_space,
    fetch_bytes,
    format_bytes,
    is_verified,
    md5_of_file,
    part_path,
    record_manifest,
    safe_destination,
)
from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_write_text

DRYAD_URL_ENV = "NEURALCLI_DRYAD_URL"
DEFAULT_DRYAD_URL = "https://datadryad.org"
# "Data for: A high-performance speech neuroprosthesis" (data-sources §4).
WILLETT_DOI = "doi:10.5061/dryad.x69p8czpq"
LISTING_SUFFIX = ".dryad.json"

# Dryad's digestType spellings -> hashlib names.
_HASHLIB_NAMES = {
    "md5": "md5",
    "sha-1": "sha1",
    "sha1": "sha1",
    "sha-256": "sha256",
    "sha256": "sha256",
    "sha-384": "sha384",
    "sha384": "sha384",
    "sha-512": "sha512",
    "sha512": "sha512",
}
_MAX_PAGES = 200  # a dataset of 200 pages of files is not the one we want
_CHUNK_BYTES = 1 << 20


class DryadFile(NamedTuple):
    """One file of a Dryad dataset version."""

    path: str  # the file's name in the version ("competitionData.tar.gz")
    size: int | None  # bytes
    digest: str | None  # lower-case hex
    digest_type: str | None  # hashlib name ("md5", "sha256", ...), None when not given
    url: str  # absolute download URL


class DryadVersion(NamedTuple):
    doi: str
    version_url: str  # absolute URL of the version record
    files: list[DryadFile]


def dryad_base_url() -> str:
    """`$NEURALCLI_DRYAD_URL`, else https://datadryad.org; no trailing slash."""
    return (os.environ.get(DRYAD_URL_ENV) or DEFAULT_DRYAD_URL).rstrip("/")


def dataset_url(doi: str, base_url: str | None = None) -> str:
    """`{base}/api/v2/datasets/{DOI, fully URL-encoded}` (Dryad wants ':' and '/' encoded)."""
    base = (base_url or dryad_base_url()).rstrip("/")
    return f"{base}/api/v2/datasets/{urllib.parse.quote(doi, safe='')}"


def list_version_files(
    doi: str = WILLETT_DOI,
    *,
    version_id: int | None = None,
    base_url: str | None = None,
    timeout_seconds: float = 30.0,
    retries: int = 3,
    backoff_seconds: float = 1.0,
) -> DryadVersion:
    """Every file of the latest (or the `version_id`) version of dataset `doi`.

    DataError when the dataset or version does not exist, an answer is not the JSON Dryad
    serves, or the server cannot be reached after `retries` retries of transient failures.
    """
    base = (base_url or dryad_base_url()).rstrip("/")
    options = dict(
        timeout_seconds=timeout_seconds, retries=retries, backoff_seconds=backoff_seconds
    )
    if version_id is None:
        record = _get_json(dataset_url(doi, base), base, what=f"Dryad dataset {doi}", **options)
        href = _link(record, "stash:version")
        if href is None:
            raise DataError(
                f"Dryad dataset {doi} at {base} names no current version (no "
                f"_links['stash:version']); is it published? check {DRYAD_URL_ENV}"
            )
        version_url = _absolute(base, href)
    else:
        version_url = f"{base}/api/v2/versions/{int(version_id)}"
    files: list[DryadFile] = []
    page_url: str | None = f"{version_url}/files"
    for _ in range(_MAX_PAGES):
        if page_url is None:
            break
        page = _get_json(page_url, base, what=f"the file list of {doi}", **options)
        embedded = page.get("_embedded")
        entries = embedded.get("stash:files") if isinstance(embedded, dict) else None
        if not isinstance(entries, list):
            raise DataError(
                f"{page_url} holds no _embedded['stash:files'] list; is {base} a Dryad server? "
                f"check {DRYAD_URL_ENV}"
            )
        files.extend(_parse_file(entry, base, page_url) for entry in entries)
        next_href = _link(page, "next")
        page_url = _absolute(base, next_href) if next_href else None
    else:
        raise DataError(f"the file list of {doi} on {base} has more than {_MAX_PAGES} pages")
    return DryadVersion(doi=doi, version_url=version_url, files=files)


def find_file(version: DryadVersion, name: str) -> DryadFile:
    """The entry called `name` (compared case-insensitively, by its last path component)."""
    wanted = name.lower()
    for entry in version.files:
        if entry.path.lower() == wanted or entry.path.rsplit("/", 1)[-1].lower() == wanted:
            return entry
    names = ", ".join(sorted(entry.path for entry in version.files)) or "none"
    raise DataError(
        f"Dryad dataset {version.doi} ({version.version_url}) has no file {name!r} "
        f"(it lists: {names}); check {DRYAD_URL_ENV}"
    )


def fetch_dryad_file(
    entry: DryadFile,
    root: Path,
    *,
    dry_run: bool = False,
    on_progress: ProgressFn | None = None,
    retries: int = 5,
    backoff_seconds: float = 1.0,
    timeout_seconds: float = 60.0,
) -> FileOutcome:
    """Bring `entry` to `root/<its name>`, verified, and record it in `root/MANIFEST.json`.

    "skipped" when the manifest already vouches for it (or a complete copy at the final name
    matches the listing and is adopted), "planned" under `dry_run` (nothing is written),
    otherwise "downloaded" or "resumed". DataError on a size or checksum mismatch (the bad
    bytes are deleted), too little disk space, or an unrecoverable HTTP error.
    """
    root = Path(root)
    key = entry.path.rsplit("/", 1)[-1]
    dest = safe_destination(root, key)
    md5 = entry.digest if entry.digest_type == "md5" else None
    if _is_current(root, key, entry, md5):
        return FileOutcome(key, entry.size, "skipped")
    if dry_run:
        return FileOutcome(key, entry.size, "planned")
    if _adopt(root, key, dest, entry):
        return FileOutcome(key, entry.size, "skipped")
    if entry.size is not None:
        part = part_path(dest)
        ensure_free_space(root, entry.size - (part.stat().st_size if part.is_file() else 0))
    result = download_file(
        entry.url,
        dest,
        size=entry.size,
        md5=md5,
        retries=retries,
        backoff_seconds=backoff_seconds,
        timeout_seconds=timeout_seconds,
        on_progress=on_progress,
    )
    if entry.digest is not None and md5 is None:
        got = hash_file(dest, entry.digest_type or "")
        if got != entry.digest:
            dest.unlink(missing_ok=True)
            raise DataError(
                f"{key} from {entry.url}: checksum mismatch: expected {entry.digest_type} "
                f"{entry.digest}, got {got}; the file was deleted, run the command again (if it "
                "repeats, the archive's copy may be damaged)"
            )
    record_manifest(root, key, url=entry.url, size=result.size, md5=result.md5, source="dryad")
    _write_listing(root, key, entry)
    return FileOutcome(key, result.size, "resumed" if result.resumed else "downloaded")


def hash_file(path: Path, algorithm: str) -> str:
    """Lower-case hex digest of `path` with a hashlib algorithm name, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe(entry: DryadFile) -> str:
    """'competitionData.tar.gz (1.2 GB, md5 abc…)' for messages."""
    size = format_bytes(entry.size) if entry.size is not None else "size not listed"
    digest = f"{entry.digest_type} {entry.digest[:12]}…" if entry.digest else "no checksum"
    return f"{entry.path} ({size}, {digest})"


# --------------------------------------------------------------------------- internals


def _get_json(url: str, base: str, *, what: str, **options: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": USER_AGENT}
    )
    try:
        body = fetch_bytes(request, **options)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise DataError(
                f"{what} not found at {url} (HTTP {exc.code}); check the DOI, or "
                f"{DRYAD_URL_ENV} if you set it"
            ) from None
        raise DataError(
            f"Dryad answered HTTP {exc.code} {exc.reason} for {url}; try again later, or set "
            f"{DRYAD_URL_ENV} to a working mirror"
        ) from None
    except OSError as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DataError(
            f"cannot reach {url} ({reason}); check the network or set {DRYAD_URL_ENV}"
        ) from None
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(
            f"{url} did not answer with JSON (got {body[:60]!r}); is {base} a Dryad server? "
            f"check {DRYAD_URL_ENV}"
        ) from None
    if not isinstance(payload, dict):
        raise DataError(f"{url} answered JSON that is not an object; check {DRYAD_URL_ENV}")
    return payload


def _link(record: Mapping[str, Any], relation: str) -> str | None:
    links = record.get("_links")
    target = links.get(relation) if isinstance(links, dict) else None
    href = target.get("href") if isinstance(target, dict) else None
    return str(href) if href else None


def _absolute(base: str, href: str) -> str:
    """Dryad's links are server-relative ("/api/v2/versions/1"); absolute ones pass through."""
    return urllib.parse.urljoin(base + "/", href)


def _parse_file(entry: Any, base: str, page_url: str) -> DryadFile:
    if not isinstance(entry, dict) or not entry.get("path"):
        raise DataError(f"{page_url}: a file entry has no path; check {DRYAD_URL_ENV}")
    path = str(entry["path"])
    href = _link(entry, "stash:download")
    if href is None:
        self_href = _link(entry, "self")
        if self_href is None:
            raise DataError(f"{page_url}: file {path!r} has no download link")
        href = self_href.rstrip("/") + "/download"
    size = entry.get("size")
    digest = entry.get("digest")
    digest_type = entry.get("digestType")
    algorithm = None
    if digest and digest_type:
        algorithm = _HASHLIB_NAMES.get(str(digest_type).strip().lower())
        if algorithm is None:  # an algorithm we cannot check: verify the size only
            digest = None
    return DryadFile(
        path=path,
        size=int(size) if isinstance(size, (int, float)) and size >= 0 else None,
        digest=str(digest).strip().lower() if digest and algorithm else None,
        digest_type=algorithm if digest else None,
        url=_absolute(base, href),
    )


def _listing_path(root: Path, key: str) -> Path:
    return root / f"{key}{LISTING_SUFFIX}"


def _listing_record(entry: DryadFile) -> dict[str, Any]:
    return {"path": entry.path, "size": entry.size, "digest": entry.digest}


def _write_listing(root: Path, key: str, entry: DryadFile) -> None:
    record = {**_listing_record(entry), "digest_type": entry.digest_type, "url": entry.url}
    atomic_write_text(_listing_path(root, key), json.dumps(record, indent=2, sort_keys=True))


def _is_current(root: Path, key: str, entry: DryadFile, md5: str | None) -> bool:
    """The manifest vouches for the file; for a non-md5 digest the recorded listing must match."""
    if not is_verified(root, key, size=entry.size, md5=md5):
        return False
    if entry.digest is None or md5 is not None:
        return True
    try:
        recorded = json.loads(_listing_path(root, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and recorded.get("digest") == entry.digest


def _adopt(root: Path, key: str, dest: Path, entry: DryadFile) -> bool:
    """Record a complete copy found at the final name (placed by hand) when it matches."""
    if entry.digest is None or not dest.is_file():
        return False
    size = dest.stat().st_size
    if entry.size is not None and size != entry.size:
        return False
    md5 = md5_of_file(dest)
    got = md5 if entry.digest_type == "md5" else hash_file(dest, entry.digest_type or "")
    if got != entry.digest:
        return False
    record_manifest(root, key, url=entry.url, size=size, md5=md5, source="dryad")
    _write_listing(root, key, entry)
    return True
