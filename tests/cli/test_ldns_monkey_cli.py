"""LDNS on MC_Maze end to end on a tiny fixture in the published NWB layout: segment, train
AE + velocity-conditioned diffusion + spike-history GLM, sample from held-out velocities,
Table 1 and behaviour evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from neuralcli.data.mc_maze_dataset import mc_maze_raw_paths
from neuralcli.testing.cli import invoke_json
from neuralcli.testing.mc_maze_layout import (
    fake_mc_maze_session,
    write_mc_maze_test_nwb,
    write_mc_maze_train_nwb,
)

TRAINING = {"epochs": 2, "warmup_epochs": 1, "batch_size": 8, "val_every_epochs": 1}


@pytest.fixture(scope="module")
def monkey(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("monkey")
    session = fake_mc_maze_session()
    train_path, test_path = mc_maze_raw_paths(home, "small")
    train_path.parent.mkdir(parents=True)
    write_mc_maze_train_nwb(train_path, session)
    write_mc_maze_test_nwb(test_path, session)
    invoke_json(home, "data", "segment", "mc_maze", "--variant", "small")
    n_units = len(session.unit_ids)
    preset = {
        "data": {"dataset": "mc_maze", "mc_maze": {"variant": "small"}},
        "ae": {
            "name": "ae-monkey",
            "model": {
                "n_neurons": n_units,
                "hidden_channels": 16,
                "latent_channels": 4,
                "num_blocks": 1,
                "bidirectional": False,
            },
            "loss": {"mask_prob": 0.5, "latent_beta": 0.001, "latent_td_beta": 0.2},
            "training": TRAINING,
        },
        "diffusion": {
            "name": "diffusion-monkey-velocity",
            "ae": "ae-monkey",
            "latents": {"clip": None},
            "model": {
                "latent_channels": 4,
                "hidden_channels": 16,
                "num_blocks": 1,
                "condition": "velocity",
            },
            "loss": {"loss": "smooth_l1", "smooth_l1_beta": 0.05, "num_train_timesteps": 20},
            "training": {**TRAINING, "ema": True, "grad_clip": 1.0},
        },
        "spike-history": {
            "name": "spike-history-monkey",
            "model": {"n_neurons": n_units, "history_bins": 4},
            "training": {"epochs": 3, "val_every_epochs": 1},
        },
    }
    path = home / "monkey.yaml"
    path.write_text(yaml.safe_dump(preset))
    ae = invoke_json(home, "train", "ae", "--preset", str(path))
    diffusion = invoke_json(home, "train", "diffusion", "--preset", str(path))
    glm = invoke_json(home, "train", "spike-history", "--preset", str(path), "--ae", "ae-monkey")
    return {"home": home, "ae": ae, "diffusion": diffusion, "glm": glm, "n_units": n_units}


def test_velocity_samples_of_held_out_trials_and_their_evaluation(monkey, tmp_path: Path):
    home = monkey["home"]
    out = tmp_path / "velocity.npz"
    sampled = invoke_json(
        home,
        "sample", "--model", "diffusion-monkey-velocity", "--condition", "velocity",
        "--from", "mc_maze:test", "--sampler", "ddim", "--steps", "4", "--out", str(out),
    )  # fmt: skip
    assert sampled["condition"] == "velocity" and sampled["condition_source"] == "mc_maze:test"
    with np.load(out) as archive:
        spikes, velocity = archive["spikes"], archive["condition_velocity"]
    assert spikes.shape == (3, 140, monkey["n_units"]) and velocity.shape == (3, 140, 2)

    behaviour = invoke_json(
        home, "evaluate", "behavior", "--samples", str(out), "--out", str(tmp_path / "beh")
    )
    assert behaviour["kinds"] == ["velocity"] and behaviour["n_velocity_samples"] == 3
    assert np.isfinite(behaviour["velocity_r2"]) and behaviour["velocity_ok"] in (True, False)
    assert behaviour["angle_within_fraction"] is None
    assert (tmp_path / "beh" / "behavior.json").is_file()

    table = invoke_json(
        home,
        "evaluate", "samples", "--samples", str(out), "--real", "mc_maze:train",
        "--bootstrap", "2", "--out", str(tmp_path / "t1"),
    )  # fmt: skip
    assert table["published"]  # MC_Maze training trials: the published rows are shown
    assert (tmp_path / "t1" / "table1.json").is_file()


def test_spike_history_sampling_on_the_same_autoencoder(monkey, tmp_path: Path):
    home = monkey["home"]
    glm_meta = json.loads((Path(monkey["glm"]["run_dir"]) / "model.json").read_text())
    assert glm_meta["data"]["dataset"] == "mc_maze" and glm_meta["train_length"] == 140
    out = tmp_path / "history.npz"
    sampled = invoke_json(
        home,
        "sample", "--model", "diffusion-monkey-velocity", "--from", "mc_maze:test",
        "--spike-history", "spike-history-monkey", "--sampler", "ddim", "--steps", "3",
        "--out", str(out), "--no-nwb",
    )  # fmt: skip
    assert sampled["spikes_from"] == "spike-history"
    with np.load(out) as archive:
        assert archive["spikes"].max() <= 5  # LDNS §5: counts capped at 5
