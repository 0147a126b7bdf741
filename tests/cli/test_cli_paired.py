"""`data fetch|segment|info|list` on the paired datasets, through the CLI.

Makin comes from a fake Zenodo on 127.0.0.1 that serves tiny files written in the published
layouts; nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuralcli.cli.main import app
from neuralcli.data.sources.makin_remote import BROADBAND_RECORDS, SORTED_RECORD
from neuralcli.data.sources.zenodo import ZENODO_URL_ENV
from neuralcli.testing.raw_layouts import (
    fake_broadband,
    fake_makin_session,
    write_broadband_nwb1,
    write_makin_mat,
)

runner = CliRunner()
SESSION = "20160622_01"
RATE = 24414.0625 / 16  # a slow broadband keeps the test fast; decimation 2 below


def invoke(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


def invoke_json(home: Path, *args: str) -> dict:
    result = runner.invoke(app, ["--home", str(home), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_synthetic_reach_fetch_info_segment_list(tmp_path):
    fetched = invoke_json(
        tmp_path,
        "data",
        "fetch",
        "synthetic-reach",
        "--sessions",
        "2",
        "--seed",
        "1",
        "--set",
        "simulation.seconds_per_session=100",
    )
    assert [s["session"] for s in fetched["sessions"]] == ["s00", "s01"]
    info = invoke_json(tmp_path, "data", "info", "synthetic-reach:s01")
    (session,) = info["sessions"]
    assert session["settings_hash"] == fetched["settings_hash"]
    assert session["spikes_r2"] > session["lfp_r2"]
    listed = invoke_json(tmp_path, "data", "list", "synthetic-reach")
    (status,) = listed["datasets"]
    assert status["present"] and status["variants"][0]["n_trials"] > 0
    again = invoke_json(
        tmp_path, "data", "fetch", "synthetic-reach", "--sessions", "2", "--seed", "1",
        "--set", "simulation.seconds_per_session=100",
    )  # fmt: skip
    assert {s["status"] for s in again["sessions"]} == {"skipped"}


@pytest.fixture()
def fake_zenodo(httpserver, tmp_path, monkeypatch):
    """Record 3854034 with indy_<SESSION>.mat; the first broadband record with its .nwb."""
    files = tmp_path / "published"
    files.mkdir()
    fake = fake_makin_session(5, duration_seconds=45.0, n_channels=3)
    write_makin_mat(files / f"indy_{SESSION}.mat", **fake._asdict())
    write_broadband_nwb1(
        files / f"indy_{SESSION}.nwb",
        data_int16=fake_broadband(2, 3, sampling_rate=RATE),
        n_samples=int(47.0 * RATE),
        n_channels=3,
        sampling_rate=RATE,
    )
    for record_id, name in ((SORTED_RECORD, "mat"), (BROADBAND_RECORDS[0], "nwb")):
        body = (files / f"indy_{SESSION}.{name}").read_bytes()
        key = f"indy_{SESSION}.{name}"
        url = httpserver.url_for(f"/api/records/{record_id}/files/{key}/content")
        listing = {
            "id": record_id,
            "metadata": {"title": f"record {record_id}"},
            "files": [
                {
                    "key": key,
                    "size": len(body),
                    "checksum": "md5:" + hashlib.md5(body).hexdigest(),
                    "links": {"self": url},
                }
            ],
        }
        httpserver.expect_request(f"/api/records/{record_id}").respond_with_json(listing)
        httpserver.expect_request(
            f"/api/records/{record_id}/files/{key}/content"
        ).respond_with_data(body)
    monkeypatch.setenv(ZENODO_URL_ENV, httpserver.url_for("/").rstrip("/"))
    return httpserver


def test_makin_fetch_segment_info(tmp_path, fake_zenodo):
    home = tmp_path / "home"
    planned = invoke_json(home, "data", "fetch", "makin", "--sessions", SESSION, "--dry-run")
    assert {f["status"] for f in planned["files"]} == {"planned"}
    assert not (home / "raw" / "makin" / f"indy_{SESSION}.mat").exists()
    fetched = invoke_json(home, "data", "fetch", "makin", "--sessions", f"MonkeyI_{SESSION}")
    assert sorted(f["status"] for f in fetched["files"]) == ["downloaded", "downloaded"]
    listed = invoke_json(home, "data", "list", "makin")
    row = next(r for r in listed["sessions"] if r["session"] == SESSION)
    assert row["verified"] == [True, True] and row["segmented"] == []
    segmented = invoke_json(
        home, "data", "segment", "makin", "--sessions", SESSION, "--max-memory", "64MiB",
        "--set", "lfp.decimation=2", "--set", "min_rate_hz=0",
    )  # fmt: skip
    (outcome,) = segmented["sessions"]
    assert outcome["status"] == "written" and outcome["n_channels"] == 3
    info = invoke_json(home, "data", "info", f"makin:{SESSION}")
    assert info["sessions"][0]["settings_hash"] == segmented["settings_hash"]
    listed = invoke_json(home, "data", "list", "makin")
    row = next(r for r in listed["sessions"] if r["session"] == SESSION)
    assert row["segmented"] == [segmented["settings_hash"]]
    table = invoke(home, "data", "list", "makin")
    assert table.exit_code == 0 and "verified" in table.stdout


def test_paired_bad_input_is_one_line(tmp_path):
    assert_one_line_error(
        invoke(tmp_path, "data", "segment", "makin", "--sessions", "20160622_02"),
        "did you mean 20160622_01",
    )
    assert_one_line_error(
        invoke(tmp_path, "data", "segment", "makin", "--max-memory", "lots"), "--max-memory"
    )
    assert_one_line_error(
        invoke(tmp_path, "data", "segment", "makin", "--set", "lfp.lowpas_hz=40"),
        "did you mean 'lfp.lowpass_hz'",
    )
    assert_one_line_error(invoke(tmp_path, "data", "fetch", "lorenz", "--from", "x"), "--from")
    assert_one_line_error(invoke(tmp_path, "data", "fetch", "flint"), "--accept-terms")
    empty = tmp_path / "downloads"
    empty.mkdir()
    assert_one_line_error(
        invoke(tmp_path, "data", "fetch", "flint", "--from", str(empty)), "Flint_2012_e1.mat"
    )
    assert_one_line_error(invoke(tmp_path, "data", "segment", "lorenz"), "not segmented")
    assert_one_line_error(invoke(tmp_path, "data", "info", "makin:20160622_01"), "not segmented")
    assert_one_line_error(
        invoke(tmp_path, "data", "fetch", "synthetic-reach", "--sessions", "a,b"), "count"
    )
    assert not (tmp_path / "processed").exists()
