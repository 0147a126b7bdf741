"""fetch mc_maze from a fake DANDI API on 127.0.0.1, then segment it into LDNS tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcli.data import download
from neuralcli.data.mc_maze_dataset import (
    McMazeSettings,
    is_prepared,
    load_mc_maze,
    mc_maze_asset_paths,
    mc_maze_raw_paths,
)
from neuralcli.data.sources.dandi import DANDI_URL_ENV, MC_MAZE_VARIANTS
from neuralcli.data.store import read_settings
from neuralcli.errors import DataError
from neuralcli.pipelines.mc_maze import fetch_mc_maze, segment_mc_maze
from neuralcli.testing.mc_maze_layout import (
    FakeDandiArchive,
    fake_mc_maze_session,
    write_mc_maze_test_nwb,
    write_mc_maze_train_nwb,
)


class RecordingReporter:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def start(self, task: str, total: int) -> None:
        self.events.append(("start", task, total))

    def update(self, task: str, completed: int, **fields: Any) -> None:
        self.events.append(("update", task, completed))

    def finish(self, task: str) -> None:
        self.events.append(("finish", task))

    def message(self, text: str) -> None:
        self.events.append(("message", text))


@pytest.fixture
def archive(httpserver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDandiArchive:
    monkeypatch.setattr(download, "_sleep", lambda seconds: None)
    session = fake_mc_maze_session()
    train_name, test_name = mc_maze_asset_paths("full")
    train = write_mc_maze_train_nwb(tmp_path / "served" / "train.nwb", session)
    test = write_mc_maze_test_nwb(tmp_path / "served" / "test.nwb", session)
    fake = FakeDandiArchive(httpserver)
    ref = MC_MAZE_VARIANTS["full"]
    fake.add_dandiset(
        ref.dandiset_id,
        ref.version,
        {train_name: train.read_bytes(), test_name: test.read_bytes(), "README.md": b"x"},
    )
    monkeypatch.setenv(DANDI_URL_ENV, fake.base_url)
    return fake


def test_fetch_then_segment(archive: FakeDandiArchive, tmp_path: Path) -> None:
    home = tmp_path / "home"
    train_name, test_name = mc_maze_asset_paths("full")

    planned = fetch_mc_maze(home, dry_run=True)
    assert [(f.relative, f.status) for f in planned.files] == [
        (train_name, "planned"),
        (test_name, "planned"),
    ]
    assert planned.to_dict()["bytes"] > 0 and not home.exists()

    reporter = RecordingReporter()
    fetched = fetch_mc_maze(home, reporter=reporter)
    assert [f.status for f in fetched.files] == ["downloaded", "downloaded"]
    assert ("finish", train_name) in reporter.events
    train_path, test_path = mc_maze_raw_paths(home, "full")
    assert train_path.is_file() and test_path.is_file()
    assert fetched.directory == home / "raw" / "mc_maze"
    assert [f.status for f in fetch_mc_maze(home).files] == ["skipped", "skipped"]

    result = segment_mc_maze(home, McMazeSettings(), reporter=reporter)

    (outcome,) = result.sessions
    assert outcome.status == "written" and outcome.session == "mc_maze"
    assert outcome.n_segments == {"train": 11, "val": 1, "test": 3} and outcome.n_units == 6
    assert any(e[0] == "message" and "1 trial(s) dropped" in e[1] for e in reporter.events)
    directory = home / "processed" / "mc_maze" / result.settings_hash
    assert result.directory == directory and outcome.path == directory / "mc_maze.h5"
    assert read_settings(directory)["variant"] == "full"

    data = load_mc_maze(home)
    assert data.arrays["spikes"].shape == (15, 140, 6) and data.arrays["spikes"].dtype == np.uint8
    assert data.arrays["velocity"].shape == (15, 140, 2)
    assert data.arrays["velocity"].dtype == np.float32
    assert data.units == {"spikes": "count", "velocity": "m/s", "angle": "rad"}
    assert set(data.segments) == {"trial", "split", "angle"}
    assert data.segments["trial"].dtype == np.int64
    assert data.segments["split"].tolist() == ["train"] * 11 + ["val"] + ["test"] * 3
    assert data.channel_names[:4] == ["heldin_000", "heldin_002", "heldin_003", "heldin_005"]
    assert data.channel_names[4:] == ["heldout_001", "heldout_004"]
    attrs = data.attrs
    assert (attrs["dataset"], attrs["session"], attrs["bin_seconds"]) == (
        "mc_maze",
        "mc_maze",
        0.005,
    )
    assert (attrs["n_neurons"], attrs["n_heldin"], attrs["n_heldout"]) == (6, 4, 2)
    assert attrs["dandiset"] == "DANDI:000128/0.220113.0400" and attrs["dropped_trials"] == [3]
    assert attrs["lag_ms"] == 100 and attrs["window_ms"] == [-250, 450]
    assert is_prepared(home)

    again = segment_mc_maze(home, McMazeSettings())
    assert again.sessions[0].status == "skipped"


def test_segment_without_files_says_what_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data fetch mc_maze --variant small"):
        segment_mc_maze(tmp_path, McMazeSettings(variant="small"))


def test_fetch_of_a_variant_the_archive_lacks(archive: FakeDandiArchive, tmp_path: Path) -> None:
    ref = MC_MAZE_VARIANTS["large"]
    archive.add_dandiset(ref.dandiset_id, ref.version, {"sub-Jenkins/other.nwb": b"x"})
    with pytest.raises(DataError, match="lists no sub-Jenkins/sub-Jenkins_ses-large"):
        fetch_mc_maze(tmp_path, variant="large")
