"""`neuralcli sample` with conditioned models and a spike-history GLM, through CliRunner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from neuralcli.data.samples import read_samples_npz
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.data.synthetic_maze_dataset import prepare_synthetic_maze
from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.models.spike_history import SpikeHistoryConfig, SpikeHistoryGLM
from neuralcli.pipelines.train_spike_history import file_sha256
from neuralcli.runtime.checkpoint import WEIGHTS_FILE, save_model
from neuralcli.testing.cli import assert_one_line_error, invoke, invoke_json

runner = CliRunner()
N_NEURONS = 6
MAZE = SyntheticMazeSettings(n_trials=40, n_neurons=N_NEURONS, n_bins=20, onset_bin=8, angle_bin=9)
MAZE_DATA = {"dataset": "synthetic-maze", "settings": MAZE.to_dict()}
FAST = ("--sampler", "ddim", "--steps", "2", "--no-nwb")


def make_run(home, name, condition, *, mask_length=None):
    torch.manual_seed(0)
    run_dir = home / "runs" / name
    ae_config = AutoencoderConfig(
        n_neurons=N_NEURONS, hidden_channels=8, latent_channels=2, num_blocks=1
    )
    save_model(
        run_dir / "autoencoder",
        SpikeAutoencoder(config=ae_config).state_dict(),
        kind="autoencoder",
        config=ae_config,
        extra={"data": MAZE_DATA},
    )
    config = DenoiserConfig(
        latent_channels=2,
        hidden_channels=8,
        num_blocks=1,
        state_size=4,
        time_embedding_dim=8,
        condition=condition,
    )
    denoiser = Denoiser(config=config)
    with torch.no_grad():
        nn.init.normal_(denoiser.blocks[0].modulation.weight, std=0.2)
    extra = {
        "latent_stats": {"mean": [0.0, 0.0], "std": [1.0, 1.0], "clip": None},
        "diffusion": {"num_train_timesteps": 10, "beta_start": 1e-4, "beta_end": 0.02},
        "train_length": mask_length or 16,
        "data": MAZE_DATA,
        "bin_seconds": 0.005,
        "condition": condition,
    }
    if mask_length:
        extra["mask_length"] = mask_length
    save_model(run_dir, denoiser.state_dict(), kind="denoiser", config=config, extra=extra)
    return str(run_dir)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    for name, condition in (("angle", "angle"), ("velocity", "velocity"), ("plain", "none")):
        make_run(home, name, condition)
    make_run(home, "human", "length", mask_length=40)
    return home


def test_fixed_angle_summary_and_file(home, tmp_path):
    out = tmp_path / "a.npz"
    payload = invoke_json(
        home,
        "sample",
        "--model",
        "runs/angle",
        "--condition",
        "angle",
        "--angle",
        "45",
        "--n",
        "3",
        "--out",
        str(out),
        *FAST,
    )
    assert payload["condition"] == "angle" and payload["condition_source"] == "fixed 45 deg"
    assert payload["spikes_from"] == "poisson" and payload["n"] == 3
    np.testing.assert_allclose(read_samples_npz(out).condition_angle, [math.pi / 4] * 3, rtol=1e-6)
    table = invoke(home, "sample", "--model", "angle", "--n", "2", "--out", str(out), *FAST)
    assert table.exit_code == 0 and "uniform" in table.stdout


def test_bad_condition_options_are_one_line_errors(home, tmp_path):
    out = ("--out", str(tmp_path / "x.npz"))
    assert_one_line_error(
        invoke(home, "sample", "--model", "angle", "--angle", "400", *out, *FAST), "--angle"
    )
    assert_one_line_error(
        invoke(home, "sample", "--model", "angle", "--condition", "velocity", *out, *FAST),
        "trained with condition 'angle'",
    )
    assert_one_line_error(
        invoke(home, "sample", "--model", "plain", "--from", "synthetic-maze:test", *out, *FAST),
        "--from",
    )
    assert_one_line_error(
        invoke(home, "sample", "--model", "human", "--length", "41", *out, *FAST), "--length 41"
    )
    assert list(tmp_path.iterdir()) == []


def test_velocity_file_and_its_errors(home, tmp_path):
    traces = tmp_path / "traces.npy"
    np.save(traces, np.full((2, 12, 2), 0.05, dtype=np.float32))
    out = tmp_path / "v.npz"
    payload = invoke_json(
        home, "sample", "--model", "velocity", "--velocity", str(traces), "--out", str(out), *FAST
    )
    assert payload["n"] == 2 and payload["length"] == 12
    assert payload["condition_source"] == str(traces)
    assert read_samples_npz(out).condition_velocity.shape == (2, 12, 2)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 12), dtype=np.float32))
    for name in ("wrong.npy", "missing.npy"):
        result = invoke(
            home,
            "sample",
            "--model",
            "velocity",
            "--velocity",
            str(tmp_path / name),
            "--out",
            str(out),
            *FAST,
        )
        assert_one_line_error(result, name, "(n, time, 2)")
    assert_one_line_error(
        invoke(
            home,
            "sample",
            "--model",
            "velocity",
            "--velocity",
            str(traces),
            "--n",
            "3",
            "--out",
            str(out),
            *FAST,
        ),
        "--n 3",
    )


def test_length_conditioned_model(home, tmp_path):
    out = tmp_path / "h.npz"
    payload = invoke_json(
        home, "sample", "--model", "human", "--length", "30", "--n", "2", "--out", str(out), *FAST
    )
    assert payload["length"] == 30 and payload["condition"] == "length"
    assert read_samples_npz(out).mask.shape == (2, 30)
    payload = invoke_json(home, "sample", "--model", "human", "--n", "2", "--out", str(out), *FAST)
    assert payload["condition_source"] == "lengths linspace(40, 40, 2)"
    assert read_samples_npz(out).mask.sum(axis=1).tolist() == [40, 40]  # window below 100 bins


def test_spike_history_option(home, tmp_path):
    config = SpikeHistoryConfig(n_neurons=N_NEURONS, history_bins=3)
    glm = SpikeHistoryGLM(config=config).state_dict()
    sha = file_sha256(home / "runs" / "angle" / "autoencoder" / WEIGHTS_FILE)
    save_model(
        home / "runs" / "glm",
        glm,
        kind="spike-history",
        config=config,
        extra={"ae_sha256": sha, "ae_source": "runs/ae"},
    )
    save_model(
        home / "runs" / "glm-other",
        glm,
        kind="spike-history",
        config=config,
        extra={"ae_sha256": "f" * 64, "ae_source": "runs/ae-other"},
    )
    out = tmp_path / "g.npz"
    payload = invoke_json(
        home,
        "sample",
        "--model",
        "angle",
        "--spike-history",
        "glm",
        "--n",
        "2",
        "--out",
        str(out),
        *FAST,
    )
    assert payload["spikes_from"] == "spike-history"
    assert read_samples_npz(out).spikes.max() <= 5
    assert_one_line_error(
        invoke(
            home,
            "sample",
            "--model",
            "angle",
            "--spike-history",
            "glm-other",
            "--out",
            str(out),
            *FAST,
        ),
        "another autoencoder",
    )


def test_conditions_from_a_prepared_split(home, tmp_path):
    prepare_synthetic_maze(home, MAZE)
    out = tmp_path / "m.npz"
    payload = invoke_json(
        home,
        "sample",
        "--model",
        "velocity",
        "--condition",
        "velocity",
        "--from",
        "synthetic-maze:test",
        "--out",
        str(out),
        *FAST,
    )
    assert payload["n"] == 4 and payload["length"] == 20
    assert payload["condition_source"] == "synthetic-maze:test"
    payload = invoke_json(
        home,
        "sample",
        "--model",
        "angle",
        "--from",
        "synthetic-maze:test",
        "--n",
        "3",
        "--out",
        str(out),
        *FAST,
    )
    assert payload["n"] == 3 and read_samples_npz(out).condition_angle.shape == (3,)
