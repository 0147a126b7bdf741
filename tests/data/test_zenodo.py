"""Zenodo record listings parsed from a local HTTP server (pytest-httpserver)."""

from __future__ import annotations

import socket

import pytest

from neuralcli.data import download
from neuralcli.data.sources.zenodo import (
    DEFAULT_ZENODO_URL,
    RemoteFile,
    get_record,
    zenodo_base_url,
)
from neuralcli.errors import DataError

MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(download, "_sleep", delays.append)
    return delays


def test_current_record_shape(httpserver) -> None:
    base = httpserver.url_for("/").rstrip("/")
    link = f"{base}/api/records/42/files/indy_20160622_01.nwb/content"
    httpserver.expect_request("/api/records/42").respond_with_json(
        {
            "id": 42,
            "metadata": {"title": "broadband for indy_20160622_01"},
            "files": [
                {
                    "key": "indy_20160622_01.nwb",
                    "size": 1234,
                    "checksum": f"md5:{MD5.upper()}",
                    "links": {"self": link},
                }
            ],
        }
    )

    record = get_record(42, base_url=base + "/")

    assert record.record_id == 42
    assert record.title == "broadband for indy_20160622_01"
    assert record.files == [RemoteFile("indy_20160622_01.nwb", 1234, MD5, link)]
    assert httpserver.log[0][0].headers["Accept"] == "application/json"


def test_legacy_record_shape_falls_back_to_records_url(httpserver) -> None:
    base = httpserver.url_for("/").rstrip("/")
    httpserver.expect_request("/api/records/583331").respond_with_json(
        {
            "title": "Nonhuman Primate Reaching",
            "files": [
                {"filename": "indy 2016.mat", "filesize": 99, "checksum": MD5},
                {"filename": "readme.txt", "filesize": 5, "checksum": "sha256:abc"},
            ],
        }
    )

    record = get_record(583331, base_url=base)

    assert record.title == "Nonhuman Primate Reaching"
    assert record.files == [
        RemoteFile("indy 2016.mat", 99, MD5, f"{base}/records/583331/files/indy%202016.mat"),
        RemoteFile("readme.txt", 5, None, f"{base}/records/583331/files/readme.txt"),
    ]


def test_missing_record(httpserver, sleeps: list[float]) -> None:
    httpserver.expect_request("/api/records/7").respond_with_json({"status": 404}, status=404)
    base = httpserver.url_for("/").rstrip("/")

    with pytest.raises(DataError) as info:
        get_record(7, base_url=base)

    assert "record 7 not found" in str(info.value)
    assert f"{base}/api/records/7" in str(info.value)
    assert sleeps == [] and len(httpserver.log) == 1


def test_transient_error_is_retried(httpserver, sleeps: list[float]) -> None:
    httpserver.expect_ordered_request("/api/records/8").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/api/records/8").respond_with_json(
        {"metadata": {"title": "t"}, "files": []}
    )

    record = get_record(8, base_url=httpserver.url_for("/"))

    assert record.title == "t" and record.files == []
    assert sleeps == [1.0]


def test_not_json(httpserver) -> None:
    httpserver.expect_request("/api/records/9").respond_with_data("<html>maintenance</html>")

    with pytest.raises(DataError, match="did not answer with JSON.*NEURALCLI_ZENODO_URL"):
        get_record(9, base_url=httpserver.url_for("/"))


def test_unreachable_server(sleeps: list[float]) -> None:
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(DataError, match="cannot reach .*check the network or set"):
        get_record(1, base_url=f"http://127.0.0.1:{port}", retries=2)

    assert sleeps == [1.0, 2.0]


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEURALCLI_ZENODO_URL", raising=False)
    assert zenodo_base_url() == DEFAULT_ZENODO_URL
    monkeypatch.setenv("NEURALCLI_ZENODO_URL", "http://127.0.0.1:8000/zenodo/")
    assert zenodo_base_url() == "http://127.0.0.1:8000/zenodo"
