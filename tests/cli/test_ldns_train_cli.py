"""train ae / train diffusion on the LDNS trial datasets through the CLI: synthetic-maze with
angle and velocity conditioning, human with masked AE loss and length conditioning."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from neuralcli.data.human_dataset import HumanSettings, human_raw_dir, prepare_human
from neuralcli.testing.cli import assert_one_line_error, invoke, invoke_json
from neuralcli.testing.willett_layout import write_competition_tree

MAZE = {"n_trials": 48, "n_neurons": 10, "n_bins": 32, "onset_bin": 8, "angle_bin": 8, "seed": 1}
TRAINING = {"epochs": 2, "warmup_epochs": 1, "batch_size": 16, "val_every_epochs": 1}
PRESET = {
    "data": {"dataset": "synthetic-maze", "synthetic_maze": MAZE},
    "ae": {
        "name": "ae-maze",
        "model": {
            "n_neurons": 10,
            "hidden_channels": 16,
            "latent_channels": 4,
            "num_blocks": 1,
            "bidirectional": False,
        },
        "loss": {"mask_prob": 0.5, "latent_beta": 0.001, "latent_td_beta": 0.2},
        "training": TRAINING,
    },
    "diffusion": {
        "name": "diffusion-maze",
        "latents": {"clip": None},
        "model": {"latent_channels": 4, "hidden_channels": 16, "num_blocks": 1},
        "loss": {"loss": "smooth_l1", "smooth_l1_beta": 0.05},
        "training": {**TRAINING, "ema": True, "grad_clip": 1.0},
    },
}


def meta(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "model.json").read_text())


@pytest.fixture(scope="module")
def maze_home(tmp_path_factory) -> tuple[Path, Path, dict]:
    home = tmp_path_factory.mktemp("maze")
    preset = home / "maze.yaml"
    preset.write_text(yaml.safe_dump(PRESET))
    ae = invoke_json(home, "train", "ae", "--preset", str(preset))
    return home, preset, ae


def test_data_fetch_synthetic_maze(tmp_path: Path):
    sets = [f"--set={key}={value}" for key, value in MAZE.items()]
    fetched = invoke_json(tmp_path, "data", "fetch", "synthetic-maze", *sets)
    assert fetched["dataset"] == "synthetic-maze" and not fetched["already_present"]
    assert (Path(fetched["directory"]) / "synthetic-maze.h5").is_file()
    again = invoke_json(tmp_path, "data", "fetch", "synthetic-maze", *sets)
    assert again["already_present"] and again["settings_hash"] == fetched["settings_hash"]
    listing = invoke_json(tmp_path, "data", "list")
    row = next(d for d in listing["datasets"] if d["name"] == "synthetic-maze")
    assert row["present"]
    assert_one_line_error(
        invoke(tmp_path, "data", "fetch", "synthetic-maze", "--set", "n_trails=5"), "n_trails"
    )


@pytest.mark.parametrize("condition", ["angle", "velocity", "none"])
def test_train_diffusion_with_each_condition(maze_home, condition: str):
    home, preset, ae = maze_home
    assert meta(ae["run_dir"])["data"]["dataset"] == "synthetic-maze"
    run = invoke_json(
        home,
        "train", "diffusion", "--preset", str(preset), "--ae", ae["run_dir"],
        "--name", f"diffusion-{condition}", "--set", f"model.condition={condition}",
    )  # fmt: skip
    recorded = meta(run["run_dir"])
    assert recorded["condition"] == condition
    assert recorded["config"]["condition"] == condition
    assert recorded["train_length"] == 32 and recorded["bin_seconds"] == pytest.approx(0.005)
    assert "mask_length" not in recorded


def test_a_condition_the_data_cannot_give_is_refused(maze_home):
    home, preset, ae = maze_home
    assert_one_line_error(
        invoke(
            home,
            "train",
            "diffusion",
            "--preset",
            str(preset),
            "--ae",
            ae["run_dir"],
            "--name",
            "bad",
            "--set",
            "model.condition=length",
        ),  # fmt: skip
        "model.condition=length needs a mask",
        "synthetic-maze",
    )
    assert not (home / "runs" / "bad").exists()


def test_human_masked_autoencoder_and_length_conditioned_diffusion(tmp_path: Path):
    days = {
        "train": {"t12.2022.05.01.mat": [6, 20, 9, 14, 11, 17, 8, 19]},
        "test": {"t12.2022.06.01.mat": [7, 12, 5, 16]},
    }
    write_competition_tree(human_raw_dir(tmp_path), days, seed=1)
    human = HumanSettings(n_channels=8, max_bins=24)
    prepare_human(tmp_path, human)
    preset = copy.deepcopy(PRESET)
    preset["data"] = {"dataset": "human", "human": human.to_dict()}
    preset["ae"]["model"]["n_neurons"] = 8
    preset["diffusion"]["model"]["condition"] = "length"
    path = tmp_path / "human.yaml"
    path.write_text(yaml.safe_dump(preset))
    ae = invoke_json(tmp_path, "train", "ae", "--preset", str(path))
    assert meta(ae["run_dir"])["data"]["dataset"] == "human"
    assert np.isfinite(ae["val_loss"])
    run = invoke_json(tmp_path, "train", "diffusion", "--preset", str(path), "--ae", ae["run_dir"])
    recorded = meta(run["run_dir"])
    assert recorded["condition"] == "length" and recorded["mask_length"] == 24
    assert recorded["bin_seconds"] == pytest.approx(0.02)
    assert_one_line_error(
        invoke(
            tmp_path,
            "train",
            "diffusion",
            "--preset",
            str(path),
            "--ae",
            ae["run_dir"],
            "--name",
            "unmasked",
            "--set",
            "model.condition=none",
        ),  # fmt: skip
        "variable-length trials",
        "model.condition=length",
    )
