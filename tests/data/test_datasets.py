"""Batch sources for the training loop and loading one split from disk."""

import numpy as np
import pytest
import torch

from neuralcli.data.datasets import LatentTensorSource, SpikeTensorSource, load_split
from neuralcli.data.lorenz_dataset import load_lorenz, prepare_lorenz
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.errors import DataError

TINY = LorenzSettings(n_trials=20, length=16, n_neurons=4, burn_in=10)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    prepare_lorenz(home, TINY, workers=1)
    return home


def test_spike_source_converts_only_the_batch():
    spikes = np.random.default_rng(0).poisson(1.0, size=(10, 8, 5)).astype(np.uint8)
    source = SpikeTensorSource(spikes)
    assert len(source) == 10 and source.shape == (10, 8, 5)
    assert source.spikes.dtype == torch.uint8
    batch = source.batch(torch.tensor([7, 2, 2]))
    assert batch.dtype == torch.float32 and batch.shape == (3, 8, 5)
    np.testing.assert_array_equal(batch.numpy(), spikes[[7, 2, 2]].astype(np.float32))
    wide = SpikeTensorSource(torch.from_numpy(spikes.astype(np.int16)))
    assert torch.equal(wide.batch(torch.arange(3)), batch.new_tensor(spikes[:3]))


def test_spike_source_refuses_floats_and_wrong_ranks():
    with pytest.raises(ValueError, match="integer"):
        SpikeTensorSource(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="trials, time, neurons"):
        SpikeTensorSource(np.zeros((2, 3), dtype=np.uint8))


def test_latent_source():
    latents = np.random.default_rng(1).standard_normal((6, 8, 3)).astype(np.float32)
    source = LatentTensorSource(latents)
    assert len(source) == 6 and source.shape == (6, 8, 3)
    batch = source.batch(torch.tensor([5, 0]))
    assert batch.dtype == torch.float32 and batch.shape == (2, 8, 3)
    np.testing.assert_array_equal(batch.numpy(), latents[[5, 0]])
    with pytest.raises(ValueError, match="float32"):
        LatentTensorSource(latents.astype(np.float64))


def test_load_split_by_settings_and_by_reference(home):
    session = load_lorenz(home, TINY)
    spikes, split = session.arrays["spikes"], session.segments["split"]
    for name in ("train", "val", "test"):
        expected = spikes[split == name]
        np.testing.assert_array_equal(load_split(home, TINY, name), expected)
        # The only variant on disk is what a bare reference means.
        np.testing.assert_array_equal(load_split(home, f"lorenz:{name}"), expected)
        np.testing.assert_array_equal(load_split(home, "lorenz", name), expected)
    assert load_split(home, TINY, "train").shape == (14, 16, 4)
    latents = load_split(home, TINY, "val", array="latents")
    assert latents.shape == (2, 16, 3) and latents.dtype == np.float32


def test_load_split_errors(home, tmp_path):
    with pytest.raises(DataError, match="valid splits: train, val, test"):
        load_split(home, TINY, "holdout")
    with pytest.raises(DataError, match="valid splits"):
        load_split(home, "lorenz")
    with pytest.raises(DataError, match="names split 'test'"):
        load_split(home, "lorenz:test", "train")
    with pytest.raises(DataError, match="neuralcli data fetch lorenz"):
        load_split(tmp_path, TINY, "train")
    with pytest.raises(DataError, match="neuralcli data fetch lorenz"):
        load_split(tmp_path, "lorenz:train")
