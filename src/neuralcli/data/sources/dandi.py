"""DANDI Archive access: list a pinned dandiset version, download its files verified.

Listing goes through the official `dandi` client (`DandiAPIClient(api_url=...)`), imported
inside the functions that need it because importing it takes about a second. The client
calls, relative to the API base URL (data-sources §3):

    GET {server}/server-info                 only for a base URL it does not know (a mirror or
                                             a test server; path stripped from the base URL)
    GET {api}/dandisets/{id}/versions/{version}/assets/?path={prefix}   paginated listing
    GET {api}/dandisets/{id}/versions/{version}/assets/{asset_id}/      metadata with digests

The bytes come from `{api}/assets/{asset_id}/download/` (the archive redirects to storage)
through neuralcli's own `download_file`: `.part` file, `Range` resume, retries, size check.
The file is then verified against the archive's digests before it gets its final name:
SHA-256 (`dandi:sha2-256`) when listed, and always the DANDI ETag (`dandi:dandi-etag`), the
S3 multipart scheme: MD5 of each part, MD5 of the concatenated part digests, then
`-<number of parts>`; parts are 64 MiB unless that needs 10,000 parts or more, in which case
they are ceil(size / 10,000) bytes.

`NEURALCLI_DANDI_API_URL` points the client at a mirror or a test server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from neuralcli.data.download import (
    MANIFEST_FILE,
    FetchProgressFn,
    FileOutcome,
    download_file,
    ensure_free_space,
    part_path,
    read_manifest,
    safe_destination,
)
from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_write_text

DANDI_URL_ENV = "NEURALCLI_DANDI_API_URL"
DEFAULT_DANDI_API_URL = "https://api.dandiarchive.org/api"
SHA256_KEY = "dandi:sha2-256"
ETAG_KEY = "dandi:dandi-etag"
UNVERIFIED_SUFFIX = ".unverified"

# S3 multipart limits behind the DANDI ETag (data-sources §3).
ETAG_DEFAULT_PART_BYTES = 64 * 2**20
ETAG_MAX_PARTS = 10_000

_HASH_CHUNK_BYTES = 1 << 20


class DandisetRef(NamedTuple):
    """A pinned dandiset version and the session label its file names carry."""

    dandiset_id: str  # "000128"
    version: str  # "0.220113.0400"
    session: str  # "full": sub-Jenkins_ses-full_...


# data-sources §3 table: the NLB MC_Maze dandiset and its scaled variants.
MC_MAZE_VARIANTS: dict[str, DandisetRef] = {
    "full": DandisetRef("000128", "0.220113.0400", "full"),
    "large": DandisetRef("000138", "0.220113.0407", "large"),
    "medium": DandisetRef("000139", "0.220113.0408", "medium"),
    "small": DandisetRef("000140", "0.220113.0408", "small"),
}


class DandiAsset(NamedTuple):
    """One file of a dandiset version."""

    path: str  # "/"-separated path inside the dandiset, e.g. "sub-Jenkins/....nwb"
    size: int  # bytes
    asset_id: str
    sha256: str | None  # lower-case hex, when the archive lists it
    etag: str | None  # "<32 hex>-<parts>", when the archive lists it
    download_url: str


def dandi_api_url() -> str:
    """`$NEURALCLI_DANDI_API_URL`, else the public archive's API; no trailing slash."""
    return (os.environ.get(DANDI_URL_ENV) or DEFAULT_DANDI_API_URL).rstrip("/")


# --------------------------------------------------------------------------- listing


def list_dandi_assets(
    dandiset_id: str,
    version: str,
    *,
    path_prefix: str = "",
    api_url: str | None = None,
) -> list[DandiAsset]:
    """Every asset of `dandiset_id` at the pinned `version` whose path starts with
    `path_prefix`, sorted by path, with sizes and digests.

    DataError when the server cannot be reached, or the dandiset or version does not exist.
    """
    from dandi.dandiapi import DandiAPIClient
    from dandi.exceptions import NotFoundError
    from requests import RequestException

    base = (api_url or dandi_api_url()).rstrip("/")
    where = f"DANDI:{dandiset_id}/{version} at {base}"
    try:
        with DandiAPIClient(api_url=base) as client:
            dandiset = client.get_dandiset(dandiset_id, version)
            remote = (
                dandiset.get_assets_with_path_prefix(path_prefix)
                if path_prefix
                else dandiset.get_assets()
            )
            assets = [_asset(a, base) for a in remote]
    except NotFoundError as exc:
        raise DataError(
            f"{where} does not exist ({exc}); check the dandiset id and version, or "
            f"{DANDI_URL_ENV} if you set it"
        ) from None
    except (RequestException, RuntimeError) as exc:
        # RuntimeError: the client found no server-info at a base URL it does not know.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"cannot list {where} ({reason}); check the network, or set {DANDI_URL_ENV} to a "
            "working DANDI API (e.g. https://api.dandiarchive.org/api)"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(
            f"{where} answered with an unexpected listing ({type(exc).__name__}: {exc}); "
            f"check {DANDI_URL_ENV} if you set it"
        ) from None
    return sorted(assets, key=lambda a: a.path)


def _asset(remote: Any, base: str) -> DandiAsset:
    """Our record of a `dandi` RemoteAsset; its metadata request gives the digests."""
    metadata = remote.get_raw_metadata()
    digests = metadata.get("digest") or {}
    sha256 = digests.get(SHA256_KEY)
    etag = digests.get(ETAG_KEY)
    return DandiAsset(
        path=str(remote.path),
        size=int(remote.size),
        asset_id=str(remote.identifier),
        sha256=str(sha256).lower() if sha256 else None,
        etag=str(etag).lower() if etag else None,
        download_url=f"{base}/assets/{remote.identifier}/download/",
    )


# --------------------------------------------------------------------------- digests


def etag_part_bytes(file_size: int) -> int:
    """Part size of the DANDI ETag of a `file_size`-byte file (S3 multipart rules)."""
    part = ETAG_DEFAULT_PART_BYTES
    if math.ceil(file_size / part) >= ETAG_MAX_PARTS:
        part = math.ceil(file_size / ETAG_MAX_PARTS)
    return part


class DandiEtag:
    """Streaming DANDI ETag: feed the file's bytes in order with `update`, then `hexdigest`.

    `part_bytes` defaults to the archive's rule for `file_size`; tests pass a small one.
    """

    def __init__(self, file_size: int, *, part_bytes: int | None = None) -> None:
        self.file_size = int(file_size)
        self.part_bytes = part_bytes or etag_part_bytes(self.file_size)
        self._part_digests: list[bytes] = []
        self._current = hashlib.md5()
        self._in_part = 0
        self._seen = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            take = min(len(view), self.part_bytes - self._in_part)
            self._current.update(view[:take])
            self._in_part += take
            self._seen += take
            view = view[take:]
            if self._in_part == self.part_bytes:
                self._close_part()

    def hexdigest(self) -> str:
        if self._seen != self.file_size:
            raise ValueError(f"ETag fed {self._seen} bytes, expected {self.file_size}")
        digests = list(self._part_digests)
        if self._in_part:
            digests.append(self._current.digest())
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"

    def _close_part(self) -> None:
        self._part_digests.append(self._current.digest())
        self._current = hashlib.md5()
        self._in_part = 0


class FileDigests(NamedTuple):
    size: int
    md5: str
    sha256: str
    etag: str


def file_digests(path: Path) -> FileDigests:
    """MD5, SHA-256 and DANDI ETag of a file, in one read."""
    size = Path(path).stat().st_size
    md5, sha256, etag = hashlib.md5(), hashlib.sha256(), DandiEtag(size)
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            md5.update(chunk)
            sha256.update(chunk)
            etag.update(chunk)
    return FileDigests(size, md5.hexdigest(), sha256.hexdigest(), etag.hexdigest())


def digest_mismatch(asset: DandiAsset, digests: FileDigests) -> str | None:
    """Why `digests` do not match the archive's listing of `asset`, or None when they do."""
    if digests.size != asset.size:
        return f"size {digests.size} bytes, the archive lists {asset.size}"
    if asset.sha256 is not None and digests.sha256 != asset.sha256:
        return f"SHA-256 {digests.sha256}, the archive lists {asset.sha256}"
    if asset.etag is not None and digests.etag != asset.etag:
        return f"DANDI ETag {digests.etag}, the archive lists {asset.etag}"
    return None


# --------------------------------------------------------------------------- download


def staging_path(dest: Path) -> Path:
    """Where a downloaded file waits for digest verification: `<dest>.unverified`
    (streamed into `<dest>.unverified.part`)."""
    return dest.with_name(dest.name + UNVERIFIED_SUFFIX)


def fetch_dandi_assets(
    assets: Sequence[DandiAsset],
    root: Path,
    *,
    dandiset_id: str,
    version: str,
    dry_run: bool = False,
    on_progress: FetchProgressFn | None = None,
    retries: int = 5,
    backoff_seconds: float = 1.0,
    timeout_seconds: float = 60.0,
) -> list[FileOutcome]:
    """Bring every asset under `root` (at its dandiset path), recording it in MANIFEST.json.

    Skipped: assets whose manifest entry carries the listed digests and whose file still has
    the listed size; files found at their final name without an entry are hashed and adopted
    when they match. The rest is downloaded (resuming any `.part`), verified against the
    listed SHA-256 and DANDI ETag, and only then renamed to its final name; a mismatch
    deletes the download and raises DataError. `dry_run` makes no request and writes
    nothing: missing files come back as "planned".
    """
    root = Path(root)
    source = f"dandi:{dandiset_id}/{version}"
    destinations = [safe_destination(root, asset.path) for asset in assets]
    manifest = read_manifest(root)
    outcomes: list[FileOutcome | None] = []
    pending: list[tuple[int, DandiAsset, Path]] = []
    for index, (asset, dest) in enumerate(zip(assets, destinations, strict=True)):
        if _entry_matches(manifest, root, asset):
            outcomes.append(FileOutcome(asset.path, asset.size, "skipped"))
        elif not dry_run and _adopt(root, asset, dest, source):
            outcomes.append(FileOutcome(asset.path, asset.size, "skipped"))
        else:
            outcomes.append(None)
            pending.append((index, asset, dest))
    if dry_run:
        for index, asset, _ in pending:
            outcomes[index] = FileOutcome(asset.path, asset.size, "planned")
        return [o for o in outcomes if o is not None]
    needed = 0
    for _, asset, dest in pending:
        staged = staging_path(dest)
        part = part_path(staged)
        have = staged.stat().st_size if staged.is_file() else 0
        have = max(have, part.stat().st_size if part.is_file() else 0)
        needed += max(0, asset.size - have)
    ensure_free_space(root, needed)
    for index, asset, dest in pending:
        progress = None
        if on_progress is not None:

            def progress(done: int, total: int | None, key: str = asset.path) -> None:
                on_progress(key, done, total)

        status = _download_verified(
            asset,
            dest,
            root=root,
            source=source,
            on_progress=progress,
            retries=retries,
            backoff_seconds=backoff_seconds,
            timeout_seconds=timeout_seconds,
        )
        outcomes[index] = FileOutcome(asset.path, asset.size, status)
    return [o for o in outcomes if o is not None]


def _download_verified(
    asset: DandiAsset,
    dest: Path,
    *,
    root: Path,
    source: str,
    on_progress: Any,
    retries: int,
    backoff_seconds: float,
    timeout_seconds: float,
) -> str:
    """Download (or resume) into the staging name, verify, rename; returns the status."""
    staged = staging_path(dest)
    resumed = False
    if not (staged.is_file() and staged.stat().st_size == asset.size):
        # A complete staged file is left by a run stopped during verification: reuse it.
        result = download_file(
            asset.download_url,
            staged,
            size=asset.size,
            md5=None,
            retries=retries,
            backoff_seconds=backoff_seconds,
            timeout_seconds=timeout_seconds,
            on_progress=on_progress,
        )
        resumed = result.resumed
    digests = file_digests(staged)
    problem = digest_mismatch(asset, digests)
    if problem is not None:
        staged.unlink(missing_ok=True)
        raise DataError(
            f"{asset.path} from {asset.download_url} failed verification: {problem}; the "
            "download was deleted, run the command again (if it repeats, the archive's copy "
            "or a mirror in between may be damaged)"
        )
    os.replace(staged, dest)
    _record(root, asset, digests, source)
    return "resumed" if resumed else "downloaded"


def _entry_matches(manifest: dict[str, Any], root: Path, asset: DandiAsset) -> bool:
    """The manifest vouches for `asset`: same size and digests, and the file has that size."""
    entry = manifest.get(asset.path)
    if not isinstance(entry, dict) or entry.get("size") != asset.size:
        return False
    if asset.sha256 is None and asset.etag is None:
        return False  # nothing to compare with: hash again
    if asset.sha256 is not None and entry.get("sha256") != asset.sha256:
        return False
    if asset.etag is not None and entry.get("dandi_etag") != asset.etag:
        return False
    try:
        return (root / asset.path).stat().st_size == asset.size
    except OSError:
        return False


def _adopt(root: Path, asset: DandiAsset, dest: Path, source: str) -> bool:
    """Record a file already at its final name when its digests match the listing."""
    if not dest.is_file() or dest.stat().st_size != asset.size:
        return False
    digests = file_digests(dest)
    if digest_mismatch(asset, digests) is not None:
        return False
    _record(root, asset, digests, source)
    return True


def _record(root: Path, asset: DandiAsset, digests: FileDigests, source: str) -> None:
    """MANIFEST.json entry in the shape of the other sources, plus the DANDI digests."""
    manifest = read_manifest(root)
    manifest[asset.path] = {
        "url": asset.download_url,
        "size": digests.size,
        "md5": digests.md5,
        "sha256": digests.sha256,
        "dandi_etag": digests.etag,
        "asset_id": asset.asset_id,
        "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write_text(root / MANIFEST_FILE, text)
