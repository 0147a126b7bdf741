"""Monkey I session -> Zenodo record resolution and download, against fake record listings."""

from __future__ import annotations

import hashlib
import json
import random
import socket
from pathlib import Path

import pytest

from neuralcli.data import download
from neuralcli.data.download import read_manifest
from neuralcli.data.sources.makin_remote import (
    BROADBAND_RECORDS,
    MAKIN_SESSIONS,
    SORTED_RECORD,
    check_sessions,
    fetch_makin,
    makin_raw_paths,
    plan_makin,
)
from neuralcli.errors import DataError


def test_session_tables_match_the_spec() -> None:
    assert len(MAKIN_SESSIONS) == 30 == len(set(MAKIN_SESSIONS))
    assert len(BROADBAND_RECORDS) == 30 == len(set(BROADBAND_RECORDS))
    assert list(MAKIN_SESSIONS) == sorted(MAKIN_SESSIONS)
    assert SORTED_RECORD == 3854034


def test_check_sessions_accepts_three_spellings() -> None:
    names = ["20160622_01", "indy_20160624_03", "MonkeyI_20160627_01", "INDY_20160622_01"]
    assert check_sessions(names) == ["20160622_01", "20160624_03", "20160627_01"]


def test_unknown_session_suggests_closest() -> None:
    with pytest.raises(DataError) as info:
        check_sessions(["20160622_01", "MonkeyI_20160622_02"])
    message = str(info.value)
    assert "MonkeyI_20160622_02" in message and "did you mean 20160622_01" in message


def test_raw_paths() -> None:
    mat, nwb = makin_raw_paths(Path("/h"), "MonkeyI_20170131_02")
    assert mat == Path("/h/raw/makin/indy_20170131_02.mat")
    assert nwb == Path("/h/raw/makin/indy_20170131_02.nwb")


class FakeZenodo:
    """Record listings and file bodies on the test server.

    Broadband record BROADBAND_RECORDS[i] holds session MAKIN_SESSIONS[(7 * i) % 30], so the
    mapping is a scrambled permutation that has to be discovered by listing.
    """

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.base = httpserver.url_for("/").rstrip("/")
        rng = random.Random(3)
        self.bodies: dict[str, bytes] = {}
        sorted_files = [self._file(SORTED_RECORD, f"indy_{s}.mat", rng) for s in MAKIN_SESSIONS]
        sorted_files.append(self._file(SORTED_RECORD, "loco_20170210_03.mat", rng))
        self._listing(SORTED_RECORD, "Nonhuman Primate Reaching", sorted_files)
        self.record_of: dict[str, int] = {}
        for i, record_id in enumerate(BROADBAND_RECORDS):
            session = MAKIN_SESSIONS[(7 * i) % 30]
            self.record_of[session] = record_id
            name = f"Indy_{session}.NWB" if i == 1 else f"indy_{session}.nwb"
            files = [
                self._file(record_id, "README.txt", rng),
                self._file(record_id, name, rng),
            ]
            self._listing(record_id, f"broadband for indy_{session}", files)

    def _file(self, record_id: int, key: str, rng: random.Random) -> dict:
        body = rng.randbytes(rng.randrange(200, 600))
        path = f"/api/records/{record_id}/files/{key}/content"
        self.bodies[key.lower()] = body
        self.server.expect_request(path).respond_with_data(body)
        return {
            "key": key,
            "size": len(body),
            "checksum": "md5:" + hashlib.md5(body).hexdigest(),
            "links": {"self": self.base + path},
        }

    def _listing(self, record_id: int, title: str, files: list[dict]) -> None:
        self.server.expect_request(f"/api/records/{record_id}").respond_with_json(
            {"id": record_id, "metadata": {"title": title}, "files": files}
        )

    def listings_requested(self) -> list[int]:
        return [
            int(request.path.rsplit("/", 1)[1])
            for request, _ in self.server.log
            if request.path.count("/") == 3 and request.path.startswith("/api/records/")
        ]


def test_resolution_is_cached_and_reused(httpserver, tmp_path: Path) -> None:
    fake = FakeZenodo(httpserver)
    sessions = ["20160624_03", "20161027_03"]
    assert [BROADBAND_RECORDS.index(fake.record_of[s]) for s in sessions] == [13, 3]

    files = plan_makin(tmp_path, sessions, base_url=fake.base)

    assert [f.key for f in files] == [
        "indy_20160624_03.mat",
        "indy_20161027_03.mat",
        "indy_20160624_03.nwb",
        "indy_20161027_03.nwb",
    ]
    nwb = files[2]
    record_id = fake.record_of["20160624_03"]
    assert nwb.url == f"{fake.base}/api/records/{record_id}/files/indy_20160624_03.nwb/content"
    assert nwb.md5 == hashlib.md5(fake.bodies["indy_20160624_03.nwb"]).hexdigest()
    # The sorted record, then broadband records in table order until both sessions are found.
    assert fake.listings_requested() == [SORTED_RECORD, *BROADBAND_RECORDS[:14]]
    cache = json.loads((tmp_path / "raw" / "makin" / "records.json").read_text())
    assert cache["broadband"]["20160624_03"]["record"] == fake.record_of["20160624_03"]
    assert len(cache["sorted"]) == 30 and len(cache["broadband"]) == 14

    httpserver.clear_log()
    assert plan_makin(tmp_path, sessions, base_url=fake.base) == files
    assert httpserver.log == []

    # A session not yet known lists only records that were not listed before.
    later = "20161026_03"  # MAKIN_SESSIONS[20], in broadband record index 20
    assert BROADBAND_RECORDS.index(fake.record_of[later]) == 20
    plan_makin(tmp_path, [later], base_url=fake.base)
    assert fake.listings_requested() == list(BROADBAND_RECORDS[14:21])


def test_case_insensitive_broadband_key(httpserver, tmp_path: Path) -> None:
    fake = FakeZenodo(httpserver)
    session = MAKIN_SESSIONS[7]  # served as Indy_<session>.NWB by record index 1

    files = plan_makin(tmp_path, [session], base_url=fake.base)

    assert files[1].key == f"indy_{session}.nwb"
    assert files[1].url.endswith(f"Indy_{session}.NWB/content")


def test_fetch_makin_downloads_and_skips(httpserver, tmp_path: Path) -> None:
    fake = FakeZenodo(httpserver)
    session = "20160622_01"

    outcomes = fetch_makin(tmp_path, [session], base_url=fake.base)

    mat, nwb = makin_raw_paths(tmp_path, session)
    assert [(o.relative, o.status) for o in outcomes] == [
        (mat.name, "downloaded"),
        (nwb.name, "downloaded"),
    ]
    assert mat.read_bytes() == fake.bodies[mat.name]
    assert nwb.read_bytes() == fake.bodies[nwb.name]
    manifest = read_manifest(mat.parent)
    assert manifest[nwb.name]["source"] == "zenodo"
    assert manifest[nwb.name]["md5"] == hashlib.md5(fake.bodies[nwb.name]).hexdigest()

    httpserver.clear_log()
    again = fetch_makin(tmp_path, [session], base_url=fake.base)
    assert [o.status for o in again] == ["skipped", "skipped"]
    assert httpserver.log == []


def test_sorted_only(httpserver, tmp_path: Path) -> None:
    fake = FakeZenodo(httpserver)

    files = plan_makin(tmp_path, ["20170131_02"], broadband=False, base_url=fake.base)

    assert [f.key for f in files] == ["indy_20170131_02.mat"]
    assert fake.listings_requested() == [SORTED_RECORD]


def test_dry_run_writes_nothing(httpserver, tmp_path: Path) -> None:
    fake = FakeZenodo(httpserver)

    outcomes = fetch_makin(tmp_path, ["20160622_01"], dry_run=True, base_url=fake.base)

    assert [o.status for o in outcomes] == ["planned", "planned"]
    assert [o.size for o in outcomes] == [
        len(fake.bodies["indy_20160622_01.mat"]),
        len(fake.bodies["indy_20160622_01.nwb"]),
    ]
    assert list(tmp_path.iterdir()) == []


def test_session_missing_from_every_broadband_record(httpserver, tmp_path: Path) -> None:
    base = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request(f"/api/records/{SORTED_RECORD}").respond_with_json(
        {"files": [{"key": "indy_20160622_01.mat", "size": 1, "checksum": "md5:" + "0" * 32}]}
    )
    for record_id in BROADBAND_RECORDS:
        httpserver.expect_request(f"/api/records/{record_id}").respond_with_json({"files": []})

    with pytest.raises(DataError, match="none of the 30 broadband records.*20160622_01"):
        plan_makin(tmp_path, ["20160622_01"], base_url=base)

    # What was learned is kept: a retry does not list the 30 records again.
    cache = json.loads((tmp_path / "raw" / "makin" / "records.json").read_text())
    assert cache["listed_broadband"] == list(BROADBAND_RECORDS)


def test_cache_for_another_server_is_ignored(
    httpserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "_sleep", lambda seconds: None)
    fake = FakeZenodo(httpserver)
    plan_makin(tmp_path, ["20160622_01"], broadband=False, base_url=fake.base)
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DataError, match="cannot reach"):
        plan_makin(tmp_path, ["20160622_01"], broadband=False, base_url=f"http://127.0.0.1:{port}")
