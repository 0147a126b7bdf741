"""Resumable, verified downloads against a local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import NamedTuple

import pytest
from werkzeug import Request, Response

from neuralcli.data import download
from neuralcli.data.download import (
    RemoteFile,
    download_file,
    ensure_free_space,
    fetch_files,
    is_verified,
    part_path,
    read_manifest,
    record_manifest,
    safe_destination,
)
from neuralcli.errors import DataError

PAYLOAD = random.Random(0).randbytes(6000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff delays requested, instead of sleeping."""
    delays: list[float] = []
    monkeypatch.setattr(download, "_sleep", delays.append)
    return delays


def serve_bytes(
    data: bytes,
    ranges_seen: list[str | None],
    *,
    cut_first_at: int | None = None,
    ignore_range: bool = False,
):
    """A handler honouring `Range: bytes=N-`; optionally cuts its first body after N bytes."""
    state = {"cut": cut_first_at is not None}

    def handler(request: Request) -> Response:
        header = request.headers.get("Range")
        ranges_seen.append(header)
        start = 0
        if header and not ignore_range:
            start = int(header.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        body = data[start:]
        headers = {"Content-Length": str(len(body))}
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if state["cut"]:
            state["cut"] = False

            def cut_body():
                yield body[:cut_first_at]
                raise ConnectionError("connection cut by the test server")

            return Response(cut_body(), status=status, headers=headers, direct_passthrough=True)
        return Response(body, status=status, headers=headers)

    return handler


def test_cut_mid_body_resumes_with_range(httpserver, tmp_path: Path, sleeps: list[float]) -> None:
    ranges: list[str | None] = []
    httpserver.expect_request("/f.bin").respond_with_handler(
        serve_bytes(PAYLOAD, ranges, cut_first_at=2500)
    )
    dest = tmp_path / "f.bin"
    progress: list[tuple[int, int | None]] = []

    result = download_file(
        httpserver.url_for("/f.bin"),
        dest,
        size=len(PAYLOAD),
        md5=PAYLOAD_MD5,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert dest.read_bytes() == PAYLOAD
    assert result.md5 == PAYLOAD_MD5 and result.size == len(PAYLOAD)
    assert result.resumed and result.attempts == 2
    assert ranges == [None, "bytes=2500-"]
    assert not part_path(dest).exists()
    assert len(sleeps) == 1
    assert progress[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert all(a[0] <= b[0] for a, b in zip(progress, progress[1:], strict=False))


def test_existing_part_file_is_resumed_and_rehashed(httpserver, tmp_path: Path) -> None:
    ranges: list[str | None] = []
    httpserver.expect_request("/f.bin").respond_with_handler(serve_bytes(PAYLOAD, ranges))
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(PAYLOAD[:1000])

    result = download_file(httpserver.url_for("/f.bin"), dest, size=None, md5=PAYLOAD_MD5)

    assert ranges == ["bytes=1000-"]
    assert result.resumed and result.md5 == PAYLOAD_MD5
    assert dest.read_bytes() == PAYLOAD


def test_server_answering_200_to_range_restarts_from_zero(httpserver, tmp_path: Path) -> None:
    ranges: list[str | None] = []
    httpserver.expect_request("/f.bin").respond_with_handler(
        serve_bytes(PAYLOAD, ranges, ignore_range=True)
    )
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(b"stale bytes from another version")

    result = download_file(httpserver.url_for("/f.bin"), dest, size=len(PAYLOAD), md5=PAYLOAD_MD5)

    assert ranges == ["bytes=32-"]
    assert not result.resumed
    assert dest.read_bytes() == PAYLOAD


def test_complete_part_with_unknown_size_finishes_on_416(httpserver, tmp_path: Path) -> None:
    ranges: list[str | None] = []
    httpserver.expect_request("/f.bin").respond_with_handler(serve_bytes(PAYLOAD, ranges))
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(PAYLOAD)

    result = download_file(httpserver.url_for("/f.bin"), dest, size=None, md5=PAYLOAD_MD5)

    assert ranges == [f"bytes={len(PAYLOAD)}-"]
    assert result.resumed and dest.read_bytes() == PAYLOAD


def test_complete_part_with_known_size_needs_no_request(httpserver, tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(PAYLOAD)

    result = download_file(httpserver.url_for("/f.bin"), dest, size=len(PAYLOAD), md5=PAYLOAD_MD5)

    assert result.attempts == 0 and result.resumed
    assert httpserver.log == []
    assert dest.read_bytes() == PAYLOAD


def test_wrong_checksum_leaves_nothing_behind(httpserver, tmp_path: Path) -> None:
    httpserver.expect_request("/f.bin").respond_with_data(PAYLOAD)
    dest = tmp_path / "f.bin"
    wrong = "0" * 32

    with pytest.raises(DataError) as info:
        download_file(httpserver.url_for("/f.bin"), dest, size=len(PAYLOAD), md5=wrong)

    message = str(info.value)
    assert "f.bin" in message and wrong in message and PAYLOAD_MD5 in message
    assert not dest.exists() and not part_path(dest).exists()
    assert list(tmp_path.iterdir()) == []


def test_longer_body_than_listed_is_a_size_mismatch(httpserver, tmp_path: Path) -> None:
    httpserver.expect_request("/f.bin").respond_with_data(PAYLOAD)
    dest = tmp_path / "f.bin"

    with pytest.raises(DataError, match="expected 100 bytes, got 6000"):
        download_file(httpserver.url_for("/f.bin"), dest, size=100, md5=None)

    assert list(tmp_path.iterdir()) == []


def test_503_then_success(httpserver, tmp_path: Path, sleeps: list[float]) -> None:
    httpserver.expect_ordered_request("/f.bin").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/f.bin").respond_with_data(PAYLOAD)
    dest = tmp_path / "f.bin"

    result = download_file(
        httpserver.url_for("/f.bin"),
        dest,
        size=len(PAYLOAD),
        md5=PAYLOAD_MD5,
        backoff_seconds=0.5,
    )

    assert result.attempts == 2 and not result.resumed
    assert sleeps == [0.5]
    assert dest.read_bytes() == PAYLOAD


def test_persistent_5xx_gives_up_with_exponential_backoff(
    httpserver, tmp_path: Path, sleeps: list[float]
) -> None:
    httpserver.expect_request("/f.bin").respond_with_data("down", status=502)
    dest = tmp_path / "f.bin"

    with pytest.raises(DataError, match="after 4 attempts"):
        download_file(httpserver.url_for("/f.bin"), dest, size=10, md5=None, retries=3)

    assert sleeps == [1.0, 2.0, 4.0]
    assert len(httpserver.log) == 4
    assert list(tmp_path.iterdir()) == []  # an empty part file is not kept


def test_404_is_not_retried(httpserver, tmp_path: Path, sleeps: list[float]) -> None:
    httpserver.expect_request("/missing.bin").respond_with_data("no", status=404)
    url = httpserver.url_for("/missing.bin")

    with pytest.raises(DataError) as info:
        download_file(url, tmp_path / "missing.bin", size=None, md5=None)

    assert url in str(info.value) and "404" in str(info.value)
    assert len(httpserver.log) == 1 and sleeps == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name", ["", "../escape.bin", "a/../../escape.bin", "/etc/passwd", "a//b", "./a", "C:\\x"]
)
def test_safe_destination_refuses_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match="refusing"):
        safe_destination(tmp_path, name)


def test_safe_destination_refuses_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)

    assert safe_destination(root, "sub/file.nwb") == root / "sub" / "file.nwb"
    with pytest.raises(DataError, match="outside"):
        safe_destination(root, "link/file.nwb")


def test_fetch_refuses_parent_key_before_any_request(httpserver, tmp_path: Path) -> None:
    files = [
        RemoteFile("good.bin", 10, None, httpserver.url_for("/good.bin")),
        RemoteFile("../evil.bin", 10, None, httpserver.url_for("/evil.bin")),
    ]

    with pytest.raises(DataError, match=r"\.\./evil\.bin"):
        fetch_files(files, tmp_path / "root")

    assert httpserver.log == []
    assert not (tmp_path / "root").exists()


def test_fetch_records_manifest_then_skips_verified(httpserver, tmp_path: Path) -> None:
    httpserver.expect_request("/d/f.bin").respond_with_data(PAYLOAD)
    root = tmp_path / "raw"
    remote = RemoteFile("sub/f.bin", len(PAYLOAD), PAYLOAD_MD5, httpserver.url_for("/d/f.bin"))
    seen: list[tuple[str, int, int | None]] = []

    first = fetch_files([remote], root, source="test", on_progress=lambda *args: seen.append(args))

    assert first == [download.FileOutcome("sub/f.bin", len(PAYLOAD), "downloaded")]
    assert (root / "sub" / "f.bin").read_bytes() == PAYLOAD
    assert seen[-1] == ("sub/f.bin", len(PAYLOAD), len(PAYLOAD))
    entry = read_manifest(root)["sub/f.bin"]
    assert entry["md5"] == PAYLOAD_MD5 and entry["size"] == len(PAYLOAD)
    assert entry["url"] == remote.url and entry["source"] == "test"
    assert entry["fetched_at"].endswith("+00:00")

    httpserver.clear()
    second = fetch_files([remote], root)

    assert second == [download.FileOutcome("sub/f.bin", len(PAYLOAD), "skipped")]
    assert httpserver.log == []


def test_fetch_adopts_matching_file_without_request(httpserver, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "f.bin").write_bytes(PAYLOAD)
    remote = RemoteFile("f.bin", len(PAYLOAD), PAYLOAD_MD5, httpserver.url_for("/f.bin"))

    outcomes = fetch_files([remote], root)

    assert outcomes[0].status == "skipped"
    assert httpserver.log == []
    assert is_verified(root, "f.bin", size=len(PAYLOAD), md5=PAYLOAD_MD5)


def test_fetch_reports_resumed_file(httpserver, tmp_path: Path) -> None:
    ranges: list[str | None] = []
    httpserver.expect_request("/f.bin").respond_with_handler(serve_bytes(PAYLOAD, ranges))
    root = tmp_path / "raw"
    root.mkdir()
    part_path(root / "f.bin").write_bytes(PAYLOAD[:4000])
    remote = RemoteFile("f.bin", len(PAYLOAD), PAYLOAD_MD5, httpserver.url_for("/f.bin"))

    outcomes = fetch_files([remote], root)

    assert outcomes[0].status == "resumed"
    assert ranges == ["bytes=4000-"]


def test_dry_run_writes_nothing(httpserver, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    files = [
        RemoteFile("a.bin", 10, None, httpserver.url_for("/a.bin")),
        RemoteFile("b/c.bin", None, None, httpserver.url_for("/c.bin")),
    ]

    outcomes = fetch_files(files, root, dry_run=True)

    assert [(o.relative, o.size, o.status) for o in outcomes] == [
        ("a.bin", 10, "planned"),
        ("b/c.bin", None, "planned"),
    ]
    assert not root.exists() and httpserver.log == []


def test_insufficient_space_fails_before_download(
    httpserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: _usage(free=5000))
    root = tmp_path / "raw"
    files = [RemoteFile("f.bin", len(PAYLOAD), PAYLOAD_MD5, httpserver.url_for("/f.bin"))]

    with pytest.raises(DataError) as info:
        fetch_files(files, root)

    message = str(info.value)
    assert "6.0 kB" in message and "5.0 kB" in message and "NEURALCLI_HOME" in message
    assert httpserver.log == []


def test_space_check_counts_bytes_already_in_part_files(
    httpserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ranges: list[str | None] = []
    httpserver.expect_request("/f.bin").respond_with_handler(serve_bytes(PAYLOAD, ranges))
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: _usage(free=1000))
    root = tmp_path / "raw"
    root.mkdir()
    part_path(root / "f.bin").write_bytes(PAYLOAD[:5000])
    files = [RemoteFile("f.bin", len(PAYLOAD), PAYLOAD_MD5, httpserver.url_for("/f.bin"))]

    assert fetch_files(files, root)[0].status == "resumed"


def test_ensure_free_space_on_missing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probed: list[Path] = []

    def usage(path):
        probed.append(Path(path))
        return _usage(free=10)

    monkeypatch.setattr(download.shutil, "disk_usage", usage)
    ensure_free_space(tmp_path / "not" / "yet", 10)
    with pytest.raises(DataError, match="need 11 B, 10 B available"):
        ensure_free_space(tmp_path / "not" / "yet", 11)
    assert probed == [tmp_path, tmp_path]


def test_manifest_verification_uses_size_on_disk(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(PAYLOAD)
    record_manifest(
        tmp_path,
        "f.bin",
        url="http://127.0.0.1/f.bin",
        size=len(PAYLOAD),
        md5=PAYLOAD_MD5,
        source="s",
    )

    assert json.loads((tmp_path / "MANIFEST.json").read_text())["f.bin"]["size"] == len(PAYLOAD)
    assert is_verified(tmp_path, "f.bin", size=len(PAYLOAD), md5=PAYLOAD_MD5.upper())
    assert is_verified(tmp_path, "f.bin", size=None, md5=None)
    assert not is_verified(tmp_path, "f.bin", size=len(PAYLOAD), md5="1" * 32)
    assert not is_verified(tmp_path, "other.bin", size=None, md5=None)
    (tmp_path / "f.bin").write_bytes(PAYLOAD[:10])
    assert not is_verified(tmp_path, "f.bin", size=len(PAYLOAD), md5=PAYLOAD_MD5)


def test_corrupt_manifest_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "MANIFEST.json").write_text("{not json")
    with pytest.raises(DataError, match="delete it"):
        read_manifest(tmp_path)


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


def _usage(*, free: int) -> _Usage:
    return _Usage(total=10**9, used=10**9 - free, free=free)
