"""prepare_lorenz / load_lorenz: simulate once, store under processed/lorenz/<hash>/."""

import numpy as np
import pytest

from neuralcli.data import lorenz_dataset
from neuralcli.data.lorenz_dataset import (
    is_prepared,
    load_lorenz,
    lorenz_dir,
    lorenz_settings_dict,
    prepare_lorenz,
    settings_from_dict,
)
from neuralcli.data.sources.lorenz import LorenzSettings, lorenz_rates, simulate_lorenz
from neuralcli.data.store import read_settings, settings_hash
from neuralcli.errors import DataError

TINY = LorenzSettings(n_trials=10, length=32, n_neurons=8, burn_in=20)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    prepare_lorenz(home, TINY, workers=1)
    return home


def test_prepare_writes_the_session_and_its_settings(home):
    directory = home / "processed" / "lorenz" / settings_hash(lorenz_settings_dict(TINY))
    assert directory == lorenz_dir(home, TINY)
    assert sorted(p.name for p in directory.iterdir()) == ["lorenz.h5", "settings.yaml"]
    settings = read_settings(directory)
    assert settings["dataset"] == "lorenz" and settings["n_trials"] == 10
    assert settings_from_dict(settings) == TINY
    assert is_prepared(home, TINY)
    assert not is_prepared(home, LorenzSettings(n_trials=11, length=32, n_neurons=8))


def test_load_matches_the_simulation(home):
    expected = simulate_lorenz(TINY, workers=1)
    session = load_lorenz(home, TINY)
    np.testing.assert_array_equal(session.arrays["spikes"], expected.spikes)
    np.testing.assert_array_equal(session.arrays["latents"], expected.latents)
    np.testing.assert_array_equal(session.segments["split"], expected.split)
    np.testing.assert_array_equal(session.segments["trial"], np.arange(10))
    assert session.attrs["bias"] == expected.bias
    assert len(session.channel_names) == 8 and session.units["spikes"] == "count per bin"
    rates = lorenz_rates(
        session.arrays["latents"], session.arrays["readout"], session.attrs["bias"], 2.0
    )
    np.testing.assert_array_equal(rates.numpy(), expected.rates)


def test_prepare_skips_a_readable_copy_and_redoes_a_broken_one(home, monkeypatch):
    path = lorenz_dir(home, TINY) / "lorenz.h5"
    calls = []
    real = lorenz_dataset.simulate_lorenz
    monkeypatch.setattr(
        lorenz_dataset, "simulate_lorenz", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    assert prepare_lorenz(home, TINY) == path
    assert calls == []
    good = path.read_bytes()
    path.write_bytes(good[:100])
    with pytest.raises(DataError, match="corrupt.*neuralcli data fetch lorenz"):
        load_lorenz(home, TINY)
    prepare_lorenz(home, TINY, workers=1)
    assert calls == [1]
    np.testing.assert_array_equal(
        load_lorenz(home, TINY).arrays["spikes"], simulate_lorenz(TINY).spikes
    )
    prepare_lorenz(home, TINY, workers=1, overwrite=True)
    assert calls == [1, 1]


def test_load_before_prepare_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="neuralcli data fetch lorenz"):
        load_lorenz(tmp_path, TINY)


def test_invalid_settings_in_a_file_raise_data_error():
    with pytest.raises(DataError, match="n_trials"):
        settings_from_dict({"dataset": "lorenz", "recipe": "x", "n_trials": -1})
    with pytest.raises(DataError):
        settings_from_dict({"unknown_key": 1})
