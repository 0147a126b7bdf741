"""Zenodo's public REST API: a record's title and file listing (data-sources §1.4).

`GET {base}/api/records/{id}` needs no token for public records. Each file carries its name,
size, an "md5:<hex>" checksum and a download link; older responses name the first two
`filename` / `filesize`, and both shapes are accepted. `NEURALCLI_ZENODO_URL` points the client
at a mirror or a test server.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, NamedTuple

from neuralcli.data.download import USER_AGENT, RemoteFile, fetch_bytes
from neuralcli.errors import DataError

__all__ = ["ZENODO_URL_ENV", "RemoteFile", "ZenodoRecord", "get_record", "zenodo_base_url"]

ZENODO_URL_ENV = "NEURALCLI_ZENODO_URL"
DEFAULT_ZENODO_URL = "https://zenodo.org"


class ZenodoRecord(NamedTuple):
    record_id: int
    title: str
    files: list[RemoteFile]  # keys are the archive's file names


def zenodo_base_url() -> str:
    """`$NEURALCLI_ZENODO_URL`, else https://zenodo.org; no trailing slash."""
    return (os.environ.get(ZENODO_URL_ENV) or DEFAULT_ZENODO_URL).rstrip("/")


def get_record(
    record_id: int,
    *,
    base_url: str | None = None,
    timeout_seconds: float = 30,
    retries: int = 3,
    backoff_seconds: float = 1.0,
) -> ZenodoRecord:
    """Title and file listing of public record `record_id`.

    DataError when the record does not exist, the answer is not a record, or the server
    cannot be reached after `retries` retries of transient failures.
    """
    base = (base_url or zenodo_base_url()).rstrip("/")
    url = f"{base}/api/records/{int(record_id)}"
    try:
        body = fetch_bytes(
            urllib.request.Request(
                url, headers={"Accept": "application/json", "User-Agent": USER_AGENT}
            ),
            timeout_seconds=timeout_seconds,
            retries=retries,
            backoff_seconds=backoff_seconds,
        )
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            raise DataError(
                f"Zenodo record {record_id} not found at {url} (HTTP {exc.code}); check the "
                f"record id, or {ZENODO_URL_ENV} if you set it"
            ) from None
        raise DataError(
            f"Zenodo answered HTTP {exc.code} {exc.reason} for {url}; try again later, or "
            f"set {ZENODO_URL_ENV} to a working mirror"
        ) from None
    except OSError as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DataError(
            f"cannot reach {url} ({reason}); check the network or set {ZENODO_URL_ENV}"
        ) from None
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(
            f"{url} did not answer with JSON (got {body[:60]!r}); is {base} a Zenodo server? "
            f"check {ZENODO_URL_ENV}"
        ) from None
    if not isinstance(payload, dict):
        raise DataError(f"{url} answered JSON that is not a record; check {ZENODO_URL_ENV}")
    return _parse_record(payload, record_id=int(record_id), base=base, url=url)


def _parse_record(
    payload: Mapping[str, Any], *, record_id: int, base: str, url: str
) -> ZenodoRecord:
    metadata = payload.get("metadata")
    title = metadata.get("title") if isinstance(metadata, dict) else None
    title = str(title or payload.get("title") or "")
    entries = payload.get("files") or []
    if isinstance(entries, dict):  # InvenioRDM shape: {"enabled": ..., "entries": {...}}
        entries = entries.get("entries") or []
        if isinstance(entries, dict):
            entries = list(entries.values())
    if not isinstance(entries, list):
        raise DataError(f"{url}: 'files' is not a list; check {ZENODO_URL_ENV}")
    files = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise DataError(f"{url}: a file entry is not an object; check {ZENODO_URL_ENV}")
        key = entry.get("key") or entry.get("filename")
        if not key:
            raise DataError(f"{url}: a file entry has no key/filename; check {ZENODO_URL_ENV}")
        size = entry.get("size", entry.get("filesize"))
        links = entry.get("links") if isinstance(entry.get("links"), dict) else {}
        link = links.get("self") or links.get("content") or links.get("download")
        if not link:
            link = f"{base}/records/{record_id}/files/{urllib.parse.quote(str(key))}"
        files.append(
            RemoteFile(
                key=str(key),
                size=int(size) if size is not None else None,
                md5=_md5_of(entry.get("checksum")),
                url=str(link),
            )
        )
    return ZenodoRecord(record_id=record_id, title=title, files=files)


def _md5_of(checksum: Any) -> str | None:
    """'md5:ABC…' -> 'abc…'; None for another algorithm or none at all."""
    if not isinstance(checksum, str):
        return None
    algorithm, sep, value = checksum.partition(":")
    if not sep:  # legacy records give the bare hex digest
        algorithm, value = "md5", checksum
    if algorithm.lower() != "md5" or len(value) != 32:
        return None
    return value.lower()
