"""DANDI listing and verified downloads against a fake DANDI API on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import random
import socket
from pathlib import Path

import pytest

from neuralcli.data import download
from neuralcli.data.download import part_path, read_manifest
from neuralcli.data.sources.dandi import (
    DANDI_URL_ENV,
    DEFAULT_DANDI_API_URL,
    MC_MAZE_VARIANTS,
    DandiEtag,
    dandi_api_url,
    etag_part_bytes,
    fetch_dandi_assets,
    file_digests,
    list_dandi_assets,
    staging_path,
)
from neuralcli.errors import DataError
from neuralcli.testing.mc_maze_layout import FakeDandiArchive

DANDISET, VERSION = "000140", "0.220113.0408"
TRAIN = "sub-Jenkins/sub-Jenkins_ses-small_desc-train_behavior+ecephys.nwb"
TEST = "sub-Jenkins/sub-Jenkins_ses-small_desc-test_ecephys.nwb"


@pytest.fixture
def archive(httpserver, monkeypatch: pytest.MonkeyPatch) -> FakeDandiArchive:
    monkeypatch.setattr(download, "_sleep", lambda seconds: None)
    fake = FakeDandiArchive(httpserver)
    rng = random.Random(5)
    fake.add_dandiset(
        DANDISET,
        VERSION,
        {
            TRAIN: rng.randbytes(3000),
            TEST: rng.randbytes(1700),
            "dataset_description.json": b"{}",
        },
    )
    return fake


def _assets(fake: FakeDandiArchive):
    return list_dandi_assets(DANDISET, VERSION, path_prefix="sub-Jenkins/", api_url=fake.base_url)


def test_variant_table_matches_the_spec() -> None:
    assert {k: tuple(v) for k, v in MC_MAZE_VARIANTS.items()} == {
        "full": ("000128", "0.220113.0400", "full"),
        "large": ("000138", "0.220113.0407", "large"),
        "medium": ("000139", "0.220113.0408", "medium"),
        "small": ("000140", "0.220113.0408", "small"),
    }


def test_api_url_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DANDI_URL_ENV, raising=False)
    assert dandi_api_url() == DEFAULT_DANDI_API_URL
    monkeypatch.setenv(DANDI_URL_ENV, "http://127.0.0.1:9/api/")
    assert dandi_api_url() == "http://127.0.0.1:9/api"


def test_listing_gives_paths_sizes_and_digests(archive: FakeDandiArchive) -> None:
    assets = _assets(archive)

    assert [a.path for a in assets] == [TEST, TRAIN]  # sorted; the prefix left out the json
    test_body = archive.bodies[archive.asset_id(DANDISET, VERSION, TEST)]
    assert assets[0].size == len(test_body)
    assert assets[0].sha256 == hashlib.sha256(test_body).hexdigest()
    assert assets[0].etag.endswith("-1")
    assert assets[0].download_url == (f"{archive.base_url}/assets/{assets[0].asset_id}/download/")
    paths = [request.path for request, _ in archive.server.log]
    listing = f"/api/dandisets/{DANDISET}/versions/{VERSION}/assets/"
    assert paths.count(listing) == 1
    assert f"{listing}{assets[1].asset_id}/" in paths  # metadata with the digests


def test_unknown_version_is_a_clear_error(archive: FakeDandiArchive) -> None:
    with pytest.raises(DataError, match="DANDI:000140/9.9 .* does not exist"):
        list_dandi_assets(DANDISET, "9.9", api_url=archive.base_url)


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError, match=f"cannot list .*{DANDI_URL_ENV}"):
        list_dandi_assets(DANDISET, VERSION, api_url=f"http://127.0.0.1:{port}/api")


def test_dry_run_lists_sizes_and_writes_nothing(archive: FakeDandiArchive, tmp_path: Path) -> None:
    assets = _assets(archive)
    root = tmp_path / "raw"

    outcomes = fetch_dandi_assets(assets, root, dandiset_id=DANDISET, version=VERSION, dry_run=True)

    assert [(o.relative, o.size, o.status) for o in outcomes] == [
        (TEST, 1700, "planned"),
        (TRAIN, 3000, "planned"),
    ]
    assert not root.exists()
    assert archive.blob_requests() == []


def test_download_records_manifest_then_skips(archive: FakeDandiArchive, tmp_path: Path) -> None:
    assets = _assets(archive)
    progress: list[tuple[str, int, int | None]] = []

    outcomes = fetch_dandi_assets(
        assets,
        tmp_path,
        dandiset_id=DANDISET,
        version=VERSION,
        on_progress=lambda key, done, total: progress.append((key, done, total)),
    )

    assert [o.status for o in outcomes] == ["downloaded", "downloaded"]
    for asset in assets:
        body = archive.bodies[asset.asset_id]
        assert (tmp_path / asset.path).read_bytes() == body
        entry = read_manifest(tmp_path)[asset.path]
        assert entry["sha256"] == asset.sha256 and entry["dandi_etag"] == asset.etag
        assert entry["md5"] == hashlib.md5(body).hexdigest()
        assert entry["source"] == f"dandi:{DANDISET}/{VERSION}"
    assert progress[-1] == (TRAIN, 3000, 3000)
    assert not list(tmp_path.rglob("*.unverified*"))

    requests_before = len(archive.blob_requests())
    again = fetch_dandi_assets(assets, tmp_path, dandiset_id=DANDISET, version=VERSION)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert len(archive.blob_requests()) == requests_before


def test_interrupted_download_resumes_with_range(archive: FakeDandiArchive, tmp_path: Path) -> None:
    assets = _assets(archive)
    train = assets[1]
    body = archive.bodies[train.asset_id]
    # What an interrupted earlier run leaves: the first bytes in the part file.
    part = part_path(staging_path(tmp_path / train.path))
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:1234])

    outcomes = fetch_dandi_assets([train], tmp_path, dandiset_id=DANDISET, version=VERSION)

    assert [o.status for o in outcomes] == ["resumed"]
    assert archive.blob_requests() == [(train.asset_id, "bytes=1234-")]
    assert (tmp_path / train.path).read_bytes() == body
    assert not part.exists()


def test_digest_mismatch_leaves_no_file(archive: FakeDandiArchive, tmp_path: Path) -> None:
    asset_id = archive.asset_id(DANDISET, VERSION, TRAIN)
    archive.listed_digests[asset_id]["dandi:sha2-256"] = "0" * 64
    train = _assets(archive)[1]

    with pytest.raises(DataError, match=r"failed verification: SHA-256 .* lists 0{64}"):
        fetch_dandi_assets([train], tmp_path, dandiset_id=DANDISET, version=VERSION)

    dest = tmp_path / train.path
    assert not dest.exists()
    assert not staging_path(dest).exists() and not part_path(staging_path(dest)).exists()
    assert TRAIN not in read_manifest(tmp_path)


def test_etag_mismatch_is_caught_without_sha256(archive: FakeDandiArchive, tmp_path: Path) -> None:
    asset_id = archive.asset_id(DANDISET, VERSION, TRAIN)
    archive.listed_digests[asset_id] = {"dandi:dandi-etag": "f" * 32 + "-1"}
    train = _assets(archive)[1]
    assert train.sha256 is None

    with pytest.raises(DataError, match="DANDI ETag"):
        fetch_dandi_assets([train], tmp_path, dandiset_id=DANDISET, version=VERSION)
    assert not (tmp_path / train.path).exists()


def test_file_already_on_disk_is_adopted(archive: FakeDandiArchive, tmp_path: Path) -> None:
    test = _assets(archive)[0]
    dest = tmp_path / test.path
    dest.parent.mkdir(parents=True)
    dest.write_bytes(archive.bodies[test.asset_id])

    outcomes = fetch_dandi_assets([test], tmp_path, dandiset_id=DANDISET, version=VERSION)

    assert [o.status for o in outcomes] == ["skipped"]
    assert archive.blob_requests() == []
    assert read_manifest(tmp_path)[test.path]["sha256"] == test.sha256


def test_listing_path_outside_root_is_refused(archive: FakeDandiArchive, tmp_path: Path) -> None:
    asset = _assets(archive)[0]._replace(path="../escape.nwb")
    with pytest.raises(DataError, match="refusing"):
        fetch_dandi_assets([asset], tmp_path, dandiset_id=DANDISET, version=VERSION)


def test_etag_part_sizes_match_dandischema() -> None:
    from dandischema.digests.dandietag import PartGenerator

    for size in (64 * 2**20 + 1, 694_004_935, 10_000 * 64 * 2**20, 10**12):
        assert etag_part_bytes(size) == PartGenerator.for_file_size(size).initial_part_size


def test_streaming_etag_matches_the_multipart_rule(tmp_path: Path) -> None:
    from dandischema.digests.dandietag import DandiETag

    data = random.Random(1).randbytes(2500)
    etag = DandiEtag(len(data), part_bytes=1000)
    for start in range(0, len(data), 333):  # chunk edges do not line up with part edges
        etag.update(data[start : start + 333])
    parts = [hashlib.md5(data[i : i + 1000]).digest() for i in (0, 1000, 2000)]
    assert etag.hexdigest() == hashlib.md5(b"".join(parts)).hexdigest() + "-3"

    path = tmp_path / "blob"
    path.write_bytes(data)
    digests = file_digests(path)
    assert digests.etag == DandiETag.from_file(path).as_str()
    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    assert json.dumps(digests._asdict())  # plain values, fit for the manifest
