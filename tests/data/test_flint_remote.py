"""Flint 2012: importing user-provided files, and the opt-in CRCNS guest download."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from werkzeug import Request, Response

from neuralcli.data import download
from neuralcli.data.download import read_manifest
from neuralcli.data.sources import flint_remote
from neuralcli.data.sources.flint_remote import (
    CRCNS_DATASET_PAGE,
    FLINT_FILE_SIZES,
    FLINT_SESSIONS,
    MATLAB5_MAGIC,
    fetch_flint_guest,
    flint_dir,
    import_flint,
)
from neuralcli.errors import DataError

SIZES = {"Flint_2012_e1.mat": 300, "Flint_2012_e2.mat": 400, "Flint_2012_e3.mat": 500}


def fake_mat(size: int, seed: int) -> bytes:
    header = MATLAB5_MAGIC + b", Platform: test"
    return header + random.Random(seed).randbytes(size - len(header))


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "Flint_2012_e1.mat").write_bytes(fake_mat(300, 1))
    (folder / "flint_2012_E2.MAT").write_bytes(fake_mat(400, 2))  # case differs: still found
    (folder / "notes.txt").write_text("unrelated")
    return folder


def test_tables() -> None:
    assert sum(FLINT_FILE_SIZES.values()) == 3_487_279_406
    assert list(FLINT_SESSIONS) == [
        "e1_1",
        "e2_1",
        "e2_2",
        "e3_1",
        "e3_2",
        "e3_3",
        "e3_4",
        "e4_1",
        "e4_2",
        "e4_3",
        "e5_1",
        "e5_2",
    ]
    assert FLINT_SESSIONS["e3_4"] == ("Flint_2012_e3.mat", 3)


def test_import_links_or_copies_and_records_manifest(tmp_path: Path, source_dir: Path) -> None:
    home = tmp_path / "home"

    outcomes = import_flint(home, source_dir, expected_sizes=SIZES)

    assert [(o.relative, o.size, o.status) for o in outcomes] == [
        ("Flint_2012_e1.mat", 300, "imported"),
        ("Flint_2012_e2.mat", 400, "imported"),
    ]
    raw = flint_dir(home)
    assert sorted(p.name for p in raw.iterdir()) == [
        "Flint_2012_e1.mat",
        "Flint_2012_e2.mat",
        "MANIFEST.json",
    ]
    e1 = raw / "Flint_2012_e1.mat"
    assert e1.read_bytes() == fake_mat(300, 1)
    assert e1.stat().st_ino == (source_dir / "Flint_2012_e1.mat").stat().st_ino  # same disk
    entry = read_manifest(raw)["Flint_2012_e2.mat"]
    assert entry["md5"] == hashlib.md5(fake_mat(400, 2)).hexdigest()
    assert entry["source"] == "import" and entry["url"].startswith("file://")

    again = import_flint(home, source_dir, expected_sizes=SIZES)
    assert [o.status for o in again] == ["skipped", "skipped"]


def test_import_copies_when_linking_fails(
    tmp_path: Path, source_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(flint_remote.os, "link", no_link)
    home = tmp_path / "home"

    import_flint(home, source_dir, expected_sizes=SIZES)

    e1 = flint_dir(home) / "Flint_2012_e1.mat"
    assert e1.read_bytes() == fake_mat(300, 1)
    assert e1.stat().st_ino != (source_dir / "Flint_2012_e1.mat").stat().st_ino
    assert read_manifest(flint_dir(home))["Flint_2012_e1.mat"]["md5"] == (
        hashlib.md5(fake_mat(300, 1)).hexdigest()
    )


def test_import_refuses_wrong_size_before_copying(tmp_path: Path, source_dir: Path) -> None:
    (source_dir / "Flint_2012_e3.mat").write_bytes(fake_mat(499, 3))

    with pytest.raises(DataError, match="Flint_2012_e3.mat has 499 bytes, expected 500"):
        import_flint(tmp_path / "home", source_dir, expected_sizes=SIZES)

    assert not (tmp_path / "home").exists()


def test_import_refuses_wrong_header(tmp_path: Path, source_dir: Path) -> None:
    (source_dir / "Flint_2012_e3.mat").write_bytes(b"<html>" + bytes(494))

    with pytest.raises(DataError, match="MATLAB 5 header"):
        import_flint(tmp_path / "home", source_dir, expected_sizes=SIZES)


def test_import_without_files_names_what_to_get(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(DataError) as info:
        import_flint(tmp_path / "home", empty)

    message = str(info.value)
    assert all(name in message for name in FLINT_FILE_SIZES)
    assert CRCNS_DATASET_PAGE in message and "Flint_2012" in message


def test_guest_fetch_refused_without_accepting_terms(httpserver, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--accept-terms"):
        fetch_flint_guest(tmp_path, accept_terms=False, base_url=httpserver.url_for("/x"))

    assert httpserver.log == []
    assert list(tmp_path.iterdir()) == []


class FakeCrcns:
    """The DREAM download endpoint: a guest login form that sets a cookie, then files."""

    COOKIE = "guest-token"

    def __init__(self, httpserver, *, set_cookie: bool = True) -> None:
        self.bodies = {name: fake_mat(size, i) for i, (name, size) in enumerate(SIZES.items())}
        self.set_cookie = set_cookie
        self.requests: list[tuple[str, dict[str, str]]] = []
        httpserver.expect_request("/crcns/Flint_2012").respond_with_handler(self.handle)
        self.base = httpserver.url_for("/crcns/Flint_2012")

    def handle(self, request: Request) -> Response:
        if request.method == "POST":
            form = request.form.to_dict()
            self.requests.append(("POST", form))
            expected = {"agree_terms": "on", "submit": "Login Anonymously", "guest": "1"}
            if any(form.get(key) != value for key, value in expected.items()):
                return Response("bad form", status=400)
            response = Response("<html>logged in</html>")
            if self.set_cookie:
                response.set_cookie("crcns_session", self.COOKIE)
            return response
        query = request.args.to_dict()
        self.requests.append(("GET", query))
        if request.cookies.get("crcns_session") != self.COOKIE or query.get("guest") != "1":
            return Response("<html>please log in and accept the terms</html>")
        name = query["fn"].removeprefix("dream/data_sets/Flint_2012/")
        return Response(self.bodies[name])


def test_guest_fetch_logs_in_then_downloads(httpserver, tmp_path: Path) -> None:
    crcns = FakeCrcns(httpserver)

    outcomes = fetch_flint_guest(
        tmp_path,
        accept_terms=True,
        base_url=crcns.base,
        files=["Flint_2012_e2.mat"],
        expected_sizes=SIZES,
    )

    assert [(o.relative, o.status) for o in outcomes] == [("Flint_2012_e2.mat", "downloaded")]
    assert (flint_dir(tmp_path) / "Flint_2012_e2.mat").read_bytes() == crcns.bodies[
        "Flint_2012_e2.mat"
    ]
    assert [method for method, _ in crcns.requests] == ["POST", "GET"]
    query = crcns.requests[1][1]
    assert query["fn"] == "dream/data_sets/Flint_2012/Flint_2012_e2.mat"
    assert query["agree_terms"] == "on" and query["submit"] == "Login Anonymously"
    assert read_manifest(flint_dir(tmp_path))["Flint_2012_e2.mat"]["source"] == "crcns-guest"


def test_guest_fetch_rejects_a_login_page(
    httpserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "_sleep", lambda seconds: None)
    crcns = FakeCrcns(httpserver, set_cookie=False)

    with pytest.raises(DataError, match="size mismatch: expected 300 bytes"):
        fetch_flint_guest(
            tmp_path,
            accept_terms=True,
            base_url=crcns.base,
            files=["Flint_2012_e1.mat"],
            expected_sizes=SIZES,
        )

    assert not any(path.suffix in (".mat", ".part") for path in flint_dir(tmp_path).rglob("*"))


def test_guest_fetch_dry_run_makes_no_request(
    httpserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURALCLI_CRCNS_URL", httpserver.url_for("/crcns/Flint_2012/"))

    outcomes = fetch_flint_guest(tmp_path, accept_terms=True, dry_run=True)

    assert [(o.relative, o.size, o.status) for o in outcomes] == [
        (name, size, "planned") for name, size in FLINT_FILE_SIZES.items()
    ]
    assert httpserver.log == [] and list(tmp_path.iterdir()) == []
    assert flint_remote.crcns_base_url() == httpserver.url_for("/crcns/Flint_2012")
