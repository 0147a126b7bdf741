"""fetch human (fake Dryad on 127.0.0.1) -> segment human -> the stored trial layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcli.data.download import read_manifest
from neuralcli.data.human_dataset import (
    HumanSettings,
    human_dir,
    human_raw_dir,
    is_prepared,
    load_human,
)
from neuralcli.data.sources.dryad import DRYAD_URL_ENV, WILLETT_DOI
from neuralcli.data.sources.willett import ARCHIVE_NAME
from neuralcli.data.store import read_settings
from neuralcli.errors import DataError
from neuralcli.pipelines.human import fetch_human, segment_human
from neuralcli.testing.willett_layout import (
    FakeDryad,
    write_competition_tar,
    write_competition_tree,
)

DAYS = {
    "train": {"t12.2022.05.01.mat": [30, 520, 12], "t12.2022.04.28.mat": [8, 40]},
    "test": {"t12.2022.06.01.mat": [9, 10, 11, 12], "t12.2022.06.02.mat": [13, 14, 15, 16]},
    "competitionHoldOut": {"t12.2022.07.01.mat": [5]},
}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def start(self, task: str, total: int) -> None:
        self.events.append(("start", task))

    def update(self, task: str, completed: int, **fields: Any) -> None:
        self.events.append(("update", task))

    def finish(self, task: str) -> None:
        self.events.append(("finish", task))

    def message(self, text: str) -> None:
        self.events.append(("message", text))


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    root = tmp_path_factory.mktemp("human-tree")
    write_competition_tree(root, DAYS, seed=2)
    return write_competition_tar(root / ARCHIVE_NAME, root).read_bytes()


def test_fetch_then_segment_stores_padded_trials(
    httpserver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, archive_bytes: bytes
) -> None:
    server = FakeDryad(httpserver, doi=WILLETT_DOI, name=ARCHIVE_NAME, body=archive_bytes)
    monkeypatch.setenv(DRYAD_URL_ENV, server.base)
    home = tmp_path / "home"

    planned = fetch_human(home, dry_run=True)
    assert [f.status for f in planned.files] == ["planned"] and not home.exists()

    reporter = Recorder()
    fetched = fetch_human(home, reporter=reporter)
    assert [f.status for f in fetched.files] == ["downloaded"]
    assert fetched.extracted == {"train": 2, "test": 2}
    assert fetched.to_dict()["extracted"] == {"train": 2, "test": 2}
    raw = human_raw_dir(home)
    assert read_manifest(raw)[ARCHIVE_NAME]["size"] == len(archive_bytes)
    assert ("finish", f"download {ARCHIVE_NAME}") in reporter.events
    assert ("finish", f"extract {ARCHIVE_NAME}") in reporter.events

    result = segment_human(home, reporter=reporter)
    assert result.status == "written"
    assert result.n_trials == {"train": 4, "val": 2, "test": 6}
    assert result.n_dropped == {"train": 1, "test": 0}
    assert result.path == human_dir(home) / "human.h5" and is_prepared(home)
    settings = read_settings(result.directory)
    assert settings["dataset"] == "human" and settings["max_bins"] == 512
    assert settings["feature"] == "tx1" and settings["n_channels"] == 128

    data = load_human(home)
    spikes, mask = data.arrays["spikes"], data.arrays["mask"]
    assert spikes.shape == (12, 512, 128) and spikes.dtype == np.uint8
    assert mask.shape == (12, 512) and mask.dtype == np.uint8
    assert data.segments["length"].tolist() == [8, 40, 30, 12, 9, 10, 11, 12, 13, 14, 15, 16]
    np.testing.assert_array_equal(mask.sum(axis=1), data.segments["length"])
    assert not spikes[mask == 0].any()
    assert set(data.segments) >= {"trial", "split", "length", "source_file", "day", "block"}
    assert data.attrs["bin_seconds"] == 0.02 and data.attrs["n_neurons"] == 128
    assert data.units["spikes"] == "threshold crossings per bin"
    assert len(data.channel_names) == 128

    again = fetch_human(home)
    assert [f.status for f in again.files] == ["skipped"] and server.ranges == [None]
    assert segment_human(home).status == "skipped"


def test_segment_without_data_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neuralcli data fetch human"):
        segment_human(tmp_path)


def test_segment_extracts_a_hand_placed_archive(tmp_path: Path, archive_bytes: bytes) -> None:
    raw = human_raw_dir(tmp_path)
    raw.mkdir(parents=True)
    (raw / ARCHIVE_NAME).write_bytes(archive_bytes)
    result = segment_human(tmp_path, HumanSettings(max_bins=32, n_channels=16))
    assert result.n_trials == {"train": 3, "val": 2, "test": 6}
    assert result.n_dropped == {"train": 2, "test": 0}  # 40 and 520 bins > 32
    assert load_human(tmp_path, HumanSettings(max_bins=32, n_channels=16)).arrays[
        "spikes"
    ].shape == (11, 32, 16)
