"""Trial datasets behind one loader: spikes and per-split conditions for LDNS training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuralcli.config.build import build_config
from neuralcli.config.schemas import DataConfig
from neuralcli.data.human_dataset import HumanSettings, human_raw_dir, prepare_human
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.data.store import processed_folders
from neuralcli.data.synthetic_maze_dataset import load_synthetic_maze, synthetic_maze_dir
from neuralcli.data.trial_datasets import TRIAL_DATASETS, get_trial_dataset
from neuralcli.errors import DataError
from neuralcli.pipelines.data import load_spike_splits, load_spikes
from neuralcli.pipelines.train_diffusion import data_config_from_meta
from neuralcli.testing.willett_layout import write_competition_tree

MAZE = {"n_trials": 50, "n_neurons": 10, "n_bins": 40, "onset_bin": 10, "angle_bin": 10}


def maze_config(**extra: object) -> DataConfig:
    return build_config(
        DataConfig, {"dataset": "synthetic-maze", "synthetic_maze": {**MAZE, **extra}}
    )


def test_synthetic_maze_is_simulated_on_first_use_with_velocity_and_angle(tmp_path: Path):
    splits = load_spike_splits(tmp_path, maze_config())
    stored = load_synthetic_maze(tmp_path, SyntheticMazeSettings(**MAZE))
    for split in ("train", "val", "test"):
        rows = np.flatnonzero(stored.segments["split"] == split)
        spikes = getattr(splits, split)
        conditions = splits.conditions_of(split)
        assert spikes.shape == (len(rows), 40, 10)
        np.testing.assert_array_equal(spikes, stored.arrays["spikes"][rows])
        np.testing.assert_allclose(conditions.velocity, stored.arrays["velocity"][rows])
        np.testing.assert_allclose(conditions.angle, stored.segments["angle"][rows], rtol=1e-6)
        assert conditions.mask is None
        assert set(conditions.present()) == {"angle", "velocity"}
    assert splits.bin_seconds == pytest.approx(0.005)
    described = splits.describe()
    folder = synthetic_maze_dir(tmp_path, SyntheticMazeSettings(**MAZE))
    assert described["settings_hash"] == folder.name
    assert described["n_train"] + described["n_val"] + described["n_test"] == 50
    # model.json's record rebuilds the same DataConfig (the diffusion stage relies on it)
    again = data_config_from_meta({"data": described})
    assert again.dataset == "synthetic-maze" and again.settings() == maze_config().settings()


def test_dataset_split_refs_carry_conditions_and_prefer_the_models_variant(tmp_path: Path):
    default_like = load_spike_splits(tmp_path, maze_config())
    other = load_spike_splits(tmp_path, maze_config(seed=5))
    assert len(processed_folders(tmp_path, "synthetic-maze")) == 2
    preferred = load_spikes("synthetic-maze:test", tmp_path, prefer_data=other.describe())
    np.testing.assert_array_equal(preferred.spikes, other.test)
    np.testing.assert_allclose(preferred.conditions.velocity, other.conditions_of("test").velocity)
    assert preferred.bin_seconds == pytest.approx(0.005)
    first = load_spikes("synthetic-maze:val", tmp_path, prefer_data=default_like.describe())
    np.testing.assert_array_equal(first.spikes, default_like.val)
    with pytest.raises(DataError, match="several processed variants"):
        load_spikes("synthetic-maze:val", tmp_path)


def test_downloaded_datasets_are_not_simulated(tmp_path: Path):
    config = build_config(DataConfig, {"dataset": "mc_maze"})
    with pytest.raises(DataError, match="neuralcli data fetch mc_maze && neuralcli data segment"):
        load_spike_splits(tmp_path, config)
    with pytest.raises(DataError, match="holds no LDNS trials"):
        get_trial_dataset("makin")
    with pytest.raises(DataError, match="sessions, not LDNS trials"):
        load_spikes("makin:train", tmp_path)
    assert set(TRIAL_DATASETS) == {"lorenz", "mc_maze", "human", "synthetic-maze"}


def test_human_splits_carry_the_padding_mask(tmp_path: Path):
    days = {
        "train": {"t12.2022.05.01.mat": [6, 20, 9, 14]},
        "test": {"t12.2022.06.01.mat": [7, 12, 5, 16]},
    }
    write_competition_tree(human_raw_dir(tmp_path), days, seed=1)
    settings = HumanSettings(n_channels=8, max_bins=24)
    prepare_human(tmp_path, settings)
    config = build_config(DataConfig, {"dataset": "human", "human": settings.to_dict()})
    splits = load_spike_splits(tmp_path, config)
    train_mask = splits.conditions_of("train").mask
    assert splits.train.shape == (4, 24, 8) and train_mask.dtype == np.uint8
    np.testing.assert_array_equal(train_mask.sum(axis=1), [6, 20, 9, 14])
    assert not splits.train[train_mask == 0].any()  # padding holds no counts
    assert splits.bin_seconds == pytest.approx(0.02)
    assert splits.conditions_of("val").mask.shape[0] + splits.test.shape[0] == 4


def test_sample_files_and_run_folders_are_found_under_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    run = home / "runs" / "diffusion-x"
    run.mkdir(parents=True)
    elsewhere.mkdir()
    counts = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 3  # (trials, time, neurons)
    np.savez(run / "samples.npz", spikes=counts)
    monkeypatch.chdir(elsewhere)  # not the home: `runs/...` is not relative to here
    for ref in ("runs/diffusion-x/samples.npz", "runs/diffusion-x", "diffusion-x"):
        loaded = load_spikes(ref, home)
        np.testing.assert_array_equal(loaded.spikes, counts)
        assert loaded.origin == home / "runs" / "diffusion-x" / "samples.npz"
    # a path relative to the working directory comes first
    np.savez(elsewhere / "mine.npz", spikes=counts[:1])
    assert load_spikes("mine.npz", home).spikes.shape == (1, 3, 4)
    with pytest.raises(DataError, match=r"runs/missing\.npz: no such file or folder \(looked in"):
        load_spikes("runs/missing.npz", home)
