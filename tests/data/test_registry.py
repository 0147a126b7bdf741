"""The dataset registry: what exists, what is on disk, dataset references."""

import numpy as np
import pytest

from neuralcli.data.lorenz_dataset import lorenz_dir, lorenz_settings_dict, prepare_lorenz
from neuralcli.data.registry import (
    DATASETS,
    get_dataset,
    list_datasets,
    parse_dataset_ref,
    parse_session_ref,
    resolve_variant,
)
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.store import processed_dir, settings_hash, write_session, write_settings
from neuralcli.errors import DataError

TINY = LorenzSettings(n_trials=6, length=8, n_neurons=3, burn_in=4)


def _fake_variant(home, settings):
    """A processed folder with a tiny session file, without simulating."""
    directory = processed_dir(home, "lorenz", settings)
    write_session(
        directory / "lorenz.h5",
        arrays={"spikes": np.zeros((4, 8, 3), dtype=np.uint8)},
        segments={"split": np.array(["train", "train", "val", "test"])},
    )
    write_settings(directory, settings)
    return directory


def test_known_datasets():
    assert list(DATASETS) == [
        "lorenz",
        "makin",
        "flint",
        "mc_maze",
        "human",
        "synthetic-maze",
        "synthetic-reach",
    ]
    info = get_dataset("lorenz")
    assert info.kind == "synthetic" and info.layout == "trials" and "2407.08751" in info.citation
    assert get_dataset("makin").layout == "paired" and "3854034" in get_dataset("makin").citation
    with pytest.raises(
        DataError,
        match="known datasets: flint, human, lorenz, makin, mc_maze, synthetic-maze, synthetic-",
    ):
        get_dataset("mc_maze_tiny")


def _lorenz_status(home):
    return next(s for s in list_datasets(home) if s.name == "lorenz")


def test_parse_session_ref():
    assert parse_session_ref("makin:20160622_01") == ("makin", "20160622_01")
    assert parse_session_ref("flint") == ("flint", None)
    with pytest.raises(DataError, match="names no session"):
        parse_session_ref("flint:")
    with pytest.raises(DataError, match="unknown dataset"):
        parse_session_ref("makn:20160622_01")


def test_empty_home(tmp_path):
    status = _lorenz_status(tmp_path)
    assert status.name == "lorenz" and status.kind == "synthetic"
    assert not status.present and status.variants == [] and status.size_bytes == 0


def test_prepared_variant_is_listed(tmp_path):
    prepare_lorenz(tmp_path, TINY, workers=1)
    status = _lorenz_status(tmp_path)
    assert status.present
    (variant,) = status.variants
    assert variant.hash == lorenz_dir(tmp_path, TINY).name
    assert variant.n_trials == 6 and variant.problem is None and not variant.is_default
    assert variant.settings["n_trials"] == 6
    assert variant.size_bytes > 0 and status.size_bytes == variant.size_bytes


def test_corrupt_variant_is_reported_not_raised(tmp_path):
    directory = _fake_variant(tmp_path, {"dataset": "lorenz", "anything": 1})
    (directory / "lorenz.h5").write_bytes(b"broken")
    status = _lorenz_status(tmp_path)
    (variant,) = status.variants
    assert not status.present and variant.n_trials is None
    assert "corrupt" in variant.problem


def test_edited_settings_are_reported_and_other_variants_still_listed(tmp_path):
    good = _fake_variant(tmp_path, {"dataset": "lorenz", "n_trials": 1})
    edited = _fake_variant(tmp_path, {"dataset": "lorenz", "n_trials": 2})
    (edited / "settings.yaml").write_text("dataset: lorenz\nn_trials: 3\n")
    status = _lorenz_status(tmp_path)
    problems = {v.hash: v.problem for v in status.variants}
    assert problems[good.name] is None and status.present
    assert "does not match its folder name" in problems[edited.name]


def test_parse_dataset_ref():
    assert parse_dataset_ref("lorenz:test") == ("lorenz", "test")
    assert parse_dataset_ref("lorenz") == ("lorenz", None)
    with pytest.raises(DataError, match="valid splits: train, val, test"):
        parse_dataset_ref("lorenz:holdout")
    with pytest.raises(DataError, match="known datasets: flint, human, lorenz"):
        parse_dataset_ref("nope:test")


def test_resolve_variant_prefers_the_default_settings(tmp_path):
    with pytest.raises(DataError, match="neuralcli data fetch lorenz"):
        resolve_variant(tmp_path, "lorenz")
    first = _fake_variant(tmp_path, {"dataset": "lorenz", "n_trials": 1})
    assert resolve_variant(tmp_path, "lorenz").hash == first.name
    second = _fake_variant(tmp_path, {"dataset": "lorenz", "n_trials": 2})
    with pytest.raises(DataError, match=f"{first.name}.*{second.name}|{second.name}.*{first.name}"):
        resolve_variant(tmp_path, "lorenz")
    default = _fake_variant(tmp_path, lorenz_settings_dict())
    assert default.name == settings_hash(lorenz_settings_dict(LorenzSettings()))
    assert resolve_variant(tmp_path, "lorenz").hash == default.name
    assert [v.is_default for v in list_datasets(tmp_path)[0].variants].count(True) == 1
