"""Dryad API v2 listing and the verified, resumable archive download, against a fake Dryad."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from neuralcli.data import download
from neuralcli.data.download import part_path, read_manifest
from neuralcli.data.sources.dryad import (
    DEFAULT_DRYAD_URL,
    DRYAD_URL_ENV,
    WILLETT_DOI,
    dataset_url,
    dryad_base_url,
    fetch_dryad_file,
    find_file,
    list_version_files,
)
from neuralcli.errors import DataError
from neuralcli.testing.willett_layout import FakeDryad

NAME = "competitionData.tar.gz"
BODY = random.Random(1).randbytes(5000)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(download, "_sleep", delays.append)
    return delays


def fake(httpserver, monkeypatch: pytest.MonkeyPatch, **options) -> FakeDryad:
    server = FakeDryad(httpserver, doi=WILLETT_DOI, name=NAME, body=BODY, **options)
    monkeypatch.setenv(DRYAD_URL_ENV, server.base)
    return server


def test_base_url_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DRYAD_URL_ENV, raising=False)
    assert dryad_base_url() == DEFAULT_DRYAD_URL
    monkeypatch.setenv(DRYAD_URL_ENV, "http://127.0.0.1:9/")
    assert dryad_base_url() == "http://127.0.0.1:9"
    assert dataset_url(WILLETT_DOI) == (
        "http://127.0.0.1:9/api/v2/datasets/doi%3A10.5061%2Fdryad.x69p8czpq"
    )


def test_listing_follows_pages_and_reads_size_and_digest(httpserver, monkeypatch) -> None:
    server = fake(httpserver, monkeypatch)
    version = list_version_files()
    assert [f.path for f in version.files] == ["README.md", NAME]
    entry = find_file(version, NAME)
    assert entry.size == len(BODY) and entry.digest_type == "md5"
    assert entry.url == f"{server.base}/api/v2/files/{FakeDryad.FILE_ID}/download"
    readme = find_file(version, "readme.md")  # no stash:download link: self + /download
    assert readme.url.endswith(f"/api/v2/files/{FakeDryad.FILE_ID + 1}/download")
    with pytest.raises(DataError, match=r"no file 'missing.bin' .*README.md"):
        find_file(version, "missing.bin")


def test_dry_run_plans_and_writes_nothing(httpserver, monkeypatch, tmp_path: Path) -> None:
    server = fake(httpserver, monkeypatch)
    entry = find_file(list_version_files(), NAME)
    outcome = fetch_dryad_file(entry, tmp_path / "raw", dry_run=True)
    assert outcome == download.FileOutcome(NAME, len(BODY), "planned")
    assert not (tmp_path / "raw").exists() and server.ranges == []


def test_download_verifies_records_and_then_skips(httpserver, monkeypatch, tmp_path) -> None:
    server = fake(httpserver, monkeypatch)
    entry = find_file(list_version_files(), NAME)
    root = tmp_path / "raw"
    progress: list[tuple[int, int | None]] = []
    outcome = fetch_dryad_file(entry, root, on_progress=lambda d, t: progress.append((d, t)))
    assert outcome.status == "downloaded" and (root / NAME).read_bytes() == BODY
    assert read_manifest(root)[NAME]["size"] == len(BODY)
    assert read_manifest(root)[NAME]["source"] == "dryad"
    assert progress[-1] == (len(BODY), len(BODY))
    assert fetch_dryad_file(entry, root).status == "skipped"
    assert server.ranges == [None]  # the second call made no request


def test_cut_download_resumes_with_range(httpserver, monkeypatch, tmp_path, sleeps) -> None:
    server = fake(httpserver, monkeypatch, cut_first_at=1800)
    entry = find_file(list_version_files(), NAME)
    outcome = fetch_dryad_file(entry, tmp_path)
    assert outcome.status == "resumed"
    assert server.ranges == [None, "bytes=1800-"] and len(sleeps) == 1
    assert (tmp_path / NAME).read_bytes() == BODY and not part_path(tmp_path / NAME).exists()


def test_part_file_from_an_earlier_run_is_resumed(httpserver, monkeypatch, tmp_path) -> None:
    server = fake(httpserver, monkeypatch)
    entry = find_file(list_version_files(), NAME)
    part_path(tmp_path / NAME).write_bytes(BODY[:3000])
    assert fetch_dryad_file(entry, tmp_path).status == "resumed"
    assert server.ranges == ["bytes=3000-"] and (tmp_path / NAME).read_bytes() == BODY


@pytest.mark.parametrize("digest_type", ["md5", "sha-256"])
def test_checksum_mismatch_deletes_the_bytes(
    httpserver, monkeypatch, tmp_path, digest_type: str
) -> None:
    wrong = "0" * (32 if digest_type == "md5" else 64)
    fake(httpserver, monkeypatch, digest_type=digest_type, listed_digest=wrong)
    entry = find_file(list_version_files(), NAME)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        fetch_dryad_file(entry, tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / NAME).exists() and not part_path(tmp_path / NAME).exists()
    assert NAME not in read_manifest(tmp_path)


def test_sha256_listing_is_verified_and_remembered(httpserver, monkeypatch, tmp_path) -> None:
    server = fake(httpserver, monkeypatch, digest_type="sha-256")
    entry = find_file(list_version_files(), NAME)
    assert entry.digest_type == "sha256"
    assert fetch_dryad_file(entry, tmp_path).status == "downloaded"
    recorded = json.loads((tmp_path / f"{NAME}.dryad.json").read_text())
    assert recorded["digest"] == entry.digest
    assert fetch_dryad_file(entry, tmp_path).status == "skipped"
    changed = entry._replace(digest="f" * 64)  # a new version with other bytes of equal size
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch_dryad_file(changed, tmp_path)
    assert server.ranges == [None, None]


def test_hand_placed_copy_is_adopted(httpserver, monkeypatch, tmp_path) -> None:
    server = fake(httpserver, monkeypatch)
    entry = find_file(list_version_files(), NAME)
    (tmp_path / NAME).write_bytes(BODY)
    assert fetch_dryad_file(entry, tmp_path).status == "skipped"
    assert read_manifest(tmp_path)[NAME]["md5"] == entry.digest and server.ranges == []


def test_unknown_dataset_names_the_setting(httpserver, monkeypatch) -> None:
    monkeypatch.setenv(DRYAD_URL_ENV, httpserver.url_for("/"))
    missing = "doi:10.5061/dryad.nothere"
    httpserver.expect_request(f"/api/v2/datasets/{missing}").respond_with_data("", status=404)
    with pytest.raises(DataError, match=f"not found.*{DRYAD_URL_ENV}"):
        list_version_files(missing)


def test_non_dryad_answer_is_reported(httpserver, monkeypatch) -> None:
    monkeypatch.setenv(DRYAD_URL_ENV, httpserver.url_for("/"))
    httpserver.expect_request(f"/api/v2/datasets/{WILLETT_DOI}").respond_with_data("<html>")
    with pytest.raises(DataError, match="did not answer with JSON"):
        list_version_files()
