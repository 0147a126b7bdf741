"""`sample_spikes` with conditioned denoisers (LDNS §9, §10) and a spike-history GLM (§5).

Tiny random-init runs are written straight into a tmp home: an AE, a denoiser whose adaLN
modulation is perturbed (at init it is zero, so the angle would have no effect) and the
model.json fields the sampler reads.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from neuralcli.data.samples import (
    read_samples_npz,
    read_samples_nwb,
    read_samples_nwb_conditions,
    write_samples_npz,
)
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.data.synthetic_maze_dataset import prepare_synthetic_maze
from neuralcli.errors import ConfigError, DataError, RunDirError
from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.models.spike_history import SpikeHistoryConfig, SpikeHistoryGLM
from neuralcli.pipelines import sample as sample_module
from neuralcli.pipelines.data import load_spikes
from neuralcli.pipelines.sample import keep_windows, sample_spikes
from neuralcli.pipelines.sample_conditions import ConditionRequest, SampleCondition
from neuralcli.pipelines.train_spike_history import file_sha256
from neuralcli.runtime.checkpoint import WEIGHTS_FILE, save_model
from neuralcli.runtime.device import Runtime

N_NEURONS, LATENTS, LENGTH = 8, 4, 24
RUNTIME = Runtime(device=torch.device("cpu"), precision="fp32", seed=0)
MAZE = SyntheticMazeSettings(
    n_trials=40, n_neurons=N_NEURONS, n_bins=32, onset_bin=10, angle_bin=12
)
MAZE_DATA = {"dataset": "synthetic-maze", "settings": MAZE.to_dict()}
FAST = {"sampler": "ddim", "steps": 3, "write_nwb": False}


def make_run(home, name, condition="none", *, mask_length=None, data=None):
    """runs/<name>/ with a tiny denoiser and runs/<name>/autoencoder/ with a tiny AE."""
    torch.manual_seed(0)
    run_dir = home / "runs" / name
    ae_config = AutoencoderConfig(
        n_neurons=N_NEURONS, hidden_channels=16, latent_channels=LATENTS, num_blocks=1
    )
    autoencoder = SpikeAutoencoder(config=ae_config)
    save_model(
        run_dir / "autoencoder",
        autoencoder.state_dict(),
        kind="autoencoder",
        config=ae_config,
        extra={"data": data},
    )
    config = DenoiserConfig(
        latent_channels=LATENTS,
        hidden_channels=16,
        num_blocks=1,
        state_size=8,
        time_embedding_dim=16,
        condition=condition,
    )
    denoiser = Denoiser(config=config)
    with torch.no_grad():
        for block in denoiser.blocks:  # adaLN-Zero: without this the embedding has no effect
            nn.init.normal_(block.modulation.weight, std=0.2)
    extra = {
        "latent_stats": {"mean": [0.0] * LATENTS, "std": [1.0] * LATENTS, "clip": None},
        "diffusion": {"num_train_timesteps": 10, "beta_start": 1e-4, "beta_end": 0.02},
        "train_length": mask_length or LENGTH,
        "data": data,
        "bin_seconds": 0.005,
        "condition": condition,
        "step": 1,
    }
    if mask_length is not None:
        extra["mask_length"] = mask_length
    save_model(run_dir, denoiser.state_dict(), kind="denoiser", config=config, extra=extra)
    return run_dir


def make_glm_run(home, diffusion_dir, name="glm", *, ae_sha256=None):
    torch.manual_seed(1)
    config = SpikeHistoryConfig(n_neurons=N_NEURONS, history_bins=5)
    glm_dir = home / "runs" / name
    sha = ae_sha256 or file_sha256(diffusion_dir / "autoencoder" / WEIGHTS_FILE)
    extra = {"ae_sha256": sha, "ae_source": "runs/ae-tiny", "step": 3}
    save_model(
        glm_dir,
        SpikeHistoryGLM(config=config).state_dict(),
        kind="spike-history",
        config=config,
        extra=extra,
    )
    return glm_dir


def draw(run_dir, tmp_path, name="s.npz", **kwargs):
    options = {**FAST, **kwargs}
    result = sample_spikes(run_dir, runtime=RUNTIME, out=tmp_path / name, **options)
    return result, read_samples_npz(result.npz_path)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def angle_run(home):
    return make_run(home, "angle", "angle")


@pytest.fixture(scope="module")
def velocity_run(home):
    return make_run(home, "velocity", "velocity")


@pytest.fixture(scope="module")
def length_run(home):
    return make_run(home, "length", "length", mask_length=128)


@pytest.fixture(scope="module")
def plain_run(home):
    return make_run(home, "plain")


def test_fixed_angle_is_stored_in_radians_and_changes_the_samples(angle_run, tmp_path):
    result, samples = draw(angle_run, tmp_path, n=3, condition=ConditionRequest(angle_degrees=45))
    np.testing.assert_allclose(samples.condition_angle, np.full(3, math.pi / 4), rtol=1e-6)
    assert samples.condition_angle.dtype == np.float32
    assert samples.condition_velocity is None and samples.mask is None
    assert samples.metadata["condition"] == {"kind": "angle", "source": "fixed 45 deg"}
    assert result.condition == samples.metadata["condition"] and result.length == LENGTH
    _, other = draw(
        angle_run, tmp_path, "o.npz", n=3, condition=ConditionRequest(angle_degrees=-90)
    )
    assert not np.allclose(samples.latents, other.latents)  # same z_T, another angle
    _, wrapped = draw(
        angle_run, tmp_path, "w.npz", n=1, condition=ConditionRequest(angle_degrees=315)
    )
    np.testing.assert_allclose(wrapped.condition_angle, [-math.pi / 4], rtol=1e-6)


def test_uniform_angles_are_seeded(angle_run, tmp_path):
    _, first = draw(angle_run, tmp_path, "a.npz", n=6)
    _, again = draw(angle_run, tmp_path, "b.npz", n=6)
    angles = first.condition_angle
    assert angles.shape == (6,) and np.all(np.abs(angles) <= math.pi)
    assert len(np.unique(angles)) == 6
    np.testing.assert_array_equal(angles, again.condition_angle)
    np.testing.assert_array_equal(first.spikes, again.spikes)
    assert first.metadata["condition"] == {"kind": "angle", "source": "uniform"}


def test_angle_errors(angle_run, plain_run, tmp_path):
    with pytest.raises(ConfigError, match="--angle 400"):
        draw(angle_run, tmp_path, n=2, condition=ConditionRequest(angle_degrees=400))
    with pytest.raises(ConfigError, match="trained with condition 'angle'"):
        draw(angle_run, tmp_path, n=2, condition=ConditionRequest(kind="velocity"))
    with pytest.raises(ConfigError, match="trained with condition 'none'"):
        draw(plain_run, tmp_path, n=2, condition=ConditionRequest(kind="angle"))
    with pytest.raises(ConfigError, match="--angle"):
        draw(plain_run, tmp_path, n=2, condition=ConditionRequest(angle_degrees=10))
    assert list(tmp_path.glob("*.npz")) == []


def test_velocity_from_npy_sets_n_and_length(velocity_run, tmp_path):
    rng = np.random.default_rng(0)
    traces = rng.normal(scale=0.1, size=(3, 20, 2)).astype(np.float64)
    path = tmp_path / "v.npy"
    np.save(path, traces)
    result, samples = draw(velocity_run, tmp_path, condition=ConditionRequest(velocity_file=path))
    assert samples.spikes.shape == (3, 20, N_NEURONS) and result.n == 3 and result.length == 20
    np.testing.assert_allclose(samples.condition_velocity, traces.astype(np.float32))
    assert samples.metadata["condition"] == {"kind": "velocity", "source": str(path)}
    _, first_two = draw(
        velocity_run, tmp_path, "two.npz", n=2, condition=ConditionRequest(velocity_file=path)
    )
    np.testing.assert_allclose(first_two.condition_velocity, traces[:2].astype(np.float32))
    np.save(tmp_path / "flat.npy", np.zeros((3, 20, 2)))
    _, flat = draw(
        velocity_run,
        tmp_path,
        "flat.npz",
        condition=ConditionRequest(velocity_file=tmp_path / "flat.npy"),
    )
    assert not np.allclose(flat.latents, samples.latents)  # the velocity reaches the model


def test_velocity_errors(velocity_run, tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((3, 20, 2), dtype=np.float32))
    with pytest.raises(ConfigError, match="--n 5"):
        draw(velocity_run, tmp_path, n=5, condition=ConditionRequest(velocity_file=good))
    with pytest.raises(ConfigError, match="exactly one of"):
        draw(velocity_run, tmp_path, n=2)
    with pytest.raises(ConfigError, match="--length 7"):
        draw(velocity_run, tmp_path, length=7, condition=ConditionRequest(velocity_file=good))
    bad = {
        "shape.npy": np.zeros((3, 20, 3), dtype=np.float32),
        "ints.npy": np.zeros((3, 20, 2), dtype=np.int64),
        "nan.npy": np.full((3, 20, 2), np.nan, dtype=np.float32),
    }
    for name, array in bad.items():
        np.save(tmp_path / name, array)
    for name in [*bad, "missing.npy"]:
        with pytest.raises(DataError, match=r"\(n, time, 2\)") as caught:
            draw(velocity_run, tmp_path, condition=ConditionRequest(velocity_file=tmp_path / name))
        assert name in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.glob("*.npz")) == []


def test_fixed_length_denoises_a_centred_window(length_run, tmp_path, monkeypatch):
    calls = []
    real = sample_module.sample_latents

    def recording(*args, **kwargs):
        latents = real(*args, **kwargs)
        calls.append((kwargs, latents.clone()))
        return latents

    monkeypatch.setattr(sample_module, "sample_latents", recording)
    result, samples = draw(length_run, tmp_path, n=2, length=20)
    ((kwargs, full),) = calls
    assert kwargs["length"] == 128 and kwargs["mask"].shape == (2, 128)
    start = (128 - 20) // 2  # centred like pipelines/latents.centre_valid
    expected = torch.zeros(2, 128)
    expected[:, start : start + 20] = 1
    torch.testing.assert_close(kwargs["mask"].float(), expected)
    assert samples.spikes.shape == (2, 20, N_NEURONS) and result.length == 20
    np.testing.assert_array_equal(samples.mask, np.ones((2, 20), np.uint8))
    # latent stats are (0, 1): the kept latents are the centred window of the denoised ones
    np.testing.assert_allclose(samples.latents, full[:, start : start + 20].numpy(), atol=1e-6)
    assert samples.metadata["condition"] == {"kind": "length", "source": "lengths 20"}
    with pytest.raises(ConfigError, match="--length 129"):
        draw(length_run, tmp_path, "x.npz", n=2, length=129)


def test_default_lengths_are_right_padded_with_a_mask(length_run, tmp_path):
    result, samples = draw(length_run, tmp_path, n=3)
    lengths = [100, 114, 128]  # linspace(100, mask_length, n)
    assert samples.spikes.shape == (3, 128, N_NEURONS)
    assert samples.mask.sum(axis=1).tolist() == lengths
    assert samples.metadata["lengths"] == lengths and samples.metadata["mask_length"] == 128
    padding = samples.mask == 0
    assert samples.spikes[padding].sum() == 0 and np.all(samples.rates[padding] == 0)
    assert np.all(samples.rates[~padding] > 0)
    assert samples.metadata["condition"]["source"].startswith("lengths linspace(100, 128")


def test_window_helpers():
    condition = SampleCondition("length", "x", 3, lengths=np.array([4, 10, 1]), window=10)
    mask = condition.centred_mask()
    assert mask[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert mask[1].all() and mask[2].tolist() == [0] * 4 + [1] + [0] * 5
    values = torch.arange(30.0).reshape(3, 10, 1)
    kept, kept_mask = keep_windows(values, condition.window_starts(), condition.lengths)
    assert kept[:, :, 0].tolist()[0] == [3, 4, 5, 6, 0, 0, 0, 0, 0, 0]
    assert kept_mask.sum(axis=1).tolist() == [4, 10, 1]


def test_spike_history_sampling(angle_run, home, tmp_path):
    glm_dir = make_glm_run(home, angle_run)
    result, samples = draw(angle_run, tmp_path, n=4, spike_history=glm_dir)
    assert result.observation == "spike-history"
    assert samples.metadata["observation"] == "spike-history"
    assert samples.metadata["spike_history"]["run"] == str(glm_dir)
    assert samples.spikes.max() <= 5 and samples.spikes.shape == (4, LENGTH, N_NEURONS)
    _, again = draw(angle_run, tmp_path, "again.npz", n=4, spike_history=glm_dir)
    np.testing.assert_array_equal(samples.spikes, again.spikes)
    _, poisson = draw(angle_run, tmp_path, "poisson.npz", n=4)
    np.testing.assert_array_equal(poisson.rates, samples.rates)  # same diffusion sample
    assert poisson.metadata["observation"] == "poisson"


def test_spike_history_must_share_the_autoencoder(angle_run, home, tmp_path):
    stranger = make_glm_run(home, angle_run, "glm-other", ae_sha256="0" * 64)
    with pytest.raises(ConfigError, match="another autoencoder"):
        draw(angle_run, tmp_path, n=2, spike_history=stranger)
    with pytest.raises(RunDirError, match="not 'spike-history'"):
        draw(angle_run, tmp_path, n=2, spike_history=angle_run / "autoencoder")


def test_length_spike_history_leaves_padding_empty(length_run, home, tmp_path):
    glm_dir = make_glm_run(home, length_run, "glm-length")
    _, samples = draw(length_run, tmp_path, n=2, spike_history=glm_dir)
    assert samples.spikes[samples.mask == 0].sum() == 0 and samples.spikes.max() <= 5


def test_conditions_round_trip_through_npz_and_nwb(angle_run, velocity_run, length_run, tmp_path):
    np.save(tmp_path / "v.npy", np.linspace(-0.2, 0.2, 2 * 12 * 2).reshape(2, 12, 2))
    cases = {
        angle_run: ({"n": 3}, {"condition_angle"}),
        velocity_run: (
            {"condition": ConditionRequest(velocity_file=tmp_path / "v.npy")},
            {"condition_velocity"},
        ),
        length_run: ({"n": 3}, {"mask"}),
    }
    for run_dir, (kwargs, names) in cases.items():
        out = tmp_path / f"{run_dir.name}.npz"
        result = sample_spikes(run_dir, runtime=RUNTIME, out=out, sampler="ddim", steps=2, **kwargs)
        samples = read_samples_npz(out)
        from_nwb = read_samples_nwb_conditions(result.nwb_path)
        assert set(from_nwb) == names
        for name in names:
            np.testing.assert_allclose(from_nwb[name], getattr(samples, name), rtol=1e-6)
            assert from_nwb[name].dtype == getattr(samples, name).dtype
        np.testing.assert_array_equal(read_samples_nwb(result.nwb_path).spikes, samples.spikes)


def test_old_sample_files_still_read(tmp_path):
    spikes = np.ones((2, 5, 3), np.int64)
    write_samples_npz(
        tmp_path / "old.npz",
        spikes=spikes,
        rates=spikes.astype(np.float32),
        latents=np.zeros((2, 5, 1)),
        bin_seconds=1.0,
        metadata={},
    )
    samples = read_samples_npz(tmp_path / "old.npz")
    assert samples.condition_angle is None and samples.condition_velocity is None
    assert samples.mask is None


def test_conditions_from_a_dataset_split(home, tmp_path):
    prepare_synthetic_maze(home, MAZE)
    test_split = load_spikes("synthetic-maze:test", home, prefer_data=MAZE_DATA).conditions
    angle_run = make_run(home, "maze-angle", "angle", data=MAZE_DATA)
    request = ConditionRequest(from_split="synthetic-maze:test")
    result, samples = draw(angle_run, tmp_path, "a.npz", condition=request, home=home)
    np.testing.assert_array_equal(samples.condition_angle, test_split.angle)
    assert result.n == len(test_split.angle) == 4
    assert samples.metadata["condition"] == {"kind": "angle", "source": "synthetic-maze:test"}
    velocity_run = make_run(home, "maze-velocity", "velocity", data=MAZE_DATA)
    _, samples = draw(velocity_run, tmp_path, "v.npz", n=2, condition=request, home=home)
    np.testing.assert_array_equal(samples.condition_velocity, test_split.velocity[:2])
    assert samples.spikes.shape == (2, 32, N_NEURONS)
    length_run = make_run(home, "maze-length", "length", mask_length=32, data=MAZE_DATA)
    with pytest.raises(DataError, match="no trial lengths"):
        draw(length_run, tmp_path, "l.npz", condition=request, home=home)
    meta = json.loads((angle_run / "model.json").read_text())
    assert meta["data"]["dataset"] == "synthetic-maze"
