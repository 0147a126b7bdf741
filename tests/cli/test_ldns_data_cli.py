"""`data fetch|segment mc_maze` and `data fetch|segment human` through the CLI, against fake
DANDI and Dryad servers on 127.0.0.1 serving files in the published layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from neuralcli.cli.main import app
from neuralcli.data import download
from neuralcli.data.mc_maze_dataset import mc_maze_asset_paths
from neuralcli.data.sources.dandi import DANDI_URL_ENV, MC_MAZE_VARIANTS
from neuralcli.data.sources.dryad import DRYAD_URL_ENV, WILLETT_DOI
from neuralcli.data.sources.willett import ARCHIVE_NAME
from neuralcli.testing.mc_maze_layout import (
    FakeDandiArchive,
    fake_mc_maze_session,
    write_mc_maze_test_nwb,
    write_mc_maze_train_nwb,
)
from neuralcli.testing.willett_layout import (
    FakeDryad,
    write_competition_tar,
    write_competition_tree,
)

runner = CliRunner()


def invoke_json(home: Path, *args: str) -> dict:
    result = runner.invoke(app, ["--home", str(home), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_mc_maze_small_fetch_dry_run_fetch_segment(httpserver, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_sleep", lambda seconds: None)
    session = fake_mc_maze_session()
    train_name, test_name = mc_maze_asset_paths("small")
    served = {
        train_name: write_mc_maze_train_nwb(tmp_path / "train.nwb", session).read_bytes(),
        test_name: write_mc_maze_test_nwb(tmp_path / "test.nwb", session).read_bytes(),
    }
    fake = FakeDandiArchive(httpserver)
    ref = MC_MAZE_VARIANTS["small"]
    fake.add_dandiset(ref.dandiset_id, ref.version, served)
    monkeypatch.setenv(DANDI_URL_ENV, fake.base_url)
    home = tmp_path / "home"

    planned = invoke_json(home, "data", "fetch", "mc_maze", "--variant", "small", "--dry-run")
    assert [f["status"] for f in planned["files"]] == ["planned", "planned"]
    fetched = invoke_json(home, "data", "fetch", "mc_maze", "--variant", "small")
    assert [f["status"] for f in fetched["files"]] == ["downloaded", "downloaded"]
    segmented = invoke_json(home, "data", "segment", "mc_maze", "--variant", "small")
    (row,) = segmented["sessions"]
    assert row["status"] == "written" and row["n_units"] == len(session.unit_ids)
    listed = invoke_json(home, "data", "list")
    mc_maze = next(d for d in listed["datasets"] if d["name"] == "mc_maze")
    assert mc_maze["present"]


def test_human_fetch_segment(httpserver, tmp_path, monkeypatch):
    root = tmp_path / "tree"
    days = {"train": {"a.mat": [20, 30]}, "test": {"b.mat": [10, 12, 14, 16]}}
    write_competition_tree(root, days, seed=1)
    body = write_competition_tar(root / ARCHIVE_NAME, root).read_bytes()
    server = FakeDryad(httpserver, doi=WILLETT_DOI, name=ARCHIVE_NAME, body=body)
    monkeypatch.setenv(DRYAD_URL_ENV, server.base)
    home = tmp_path / "home"
    fetched = invoke_json(home, "data", "fetch", "human")
    assert [f["status"] for f in fetched["files"]] == ["downloaded"]
    segmented = invoke_json(home, "data", "segment", "human")
    assert segmented["status"] == "written"
    assert segmented["n_trials"] == {"train": 2, "val": 1, "test": 3}


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["data", "fetch", "lorenz", "--variant", "small"], "--variant applies to mc_maze"),
        (["data", "segment", "human", "--sessions", "a"], "--sessions does not apply to human"),
    ],
)
def test_ldns_data_bad_options_are_one_line(tmp_path, args, fragment):
    result = runner.invoke(app, ["--home", str(tmp_path), *args])
    assert result.exit_code == 2
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _strip(path: Path, member: str) -> None:
    """Remove one part of an NWB file in place: the units table, the hand velocity or the
    trials table's move_onset_time column (and its name in `colnames`)."""
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as handle:
        if member == "move_onset_time":
            trials = handle["intervals/trials"]
            del trials["move_onset_time"]
            names = [n for n in trials.attrs["colnames"] if n != "move_onset_time"]
            trials.attrs["colnames"] = np.array(names, dtype=object)
        else:
            del handle[member]


@pytest.mark.parametrize(
    ("member", "fragment"),
    [
        ("units", "no units"),
        ("processing/behavior", "no processing/behavior/hand_vel"),
        ("move_onset_time", "no move_onset_time"),
    ],
)
def test_mc_maze_file_missing_a_part_is_a_one_line_error(tmp_path, member, fragment):
    from neuralcli.data.mc_maze_dataset import mc_maze_raw_paths

    home = tmp_path / "home"
    train_path, _ = mc_maze_raw_paths(home, "small")
    train_path.parent.mkdir(parents=True)
    write_mc_maze_train_nwb(train_path, fake_mc_maze_session())
    _strip(train_path, member)
    result = runner.invoke(
        app, ["--home", str(home), "data", "segment", "mc_maze", "--variant", "small"]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert not (home / "processed" / "mc_maze").exists() or not any(
        (home / "processed" / "mc_maze").rglob("*.h5")
    )
