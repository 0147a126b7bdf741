"""`evaluate_behavior`: a ridge decoder fit on real AE rates, applied to conditioned samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from neuralcli.data.samples import write_samples_npz
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.data.synthetic_maze_dataset import prepare_synthetic_maze
from neuralcli.errors import DataError
from neuralcli.evaluation.behavior import angle_errors, reach_angle
from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.pipelines.data import load_spikes
from neuralcli.pipelines.evaluate_behavior import evaluate_behavior
from neuralcli.runtime.checkpoint import save_model

SETTINGS = SyntheticMazeSettings(n_trials=60, n_neurons=12, n_bins=60, onset_bin=20, angle_bin=20)
DATA = {"dataset": "synthetic-maze", "settings": SETTINGS.to_dict()}  # as model.json has it
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A prepared tiny synthetic-maze dataset and a diffusion run folder holding a random AE."""
    home = tmp_path_factory.mktemp("behavior-home")
    prepare_synthetic_maze(home, SETTINGS)
    torch.manual_seed(0)
    config = AutoencoderConfig(n_neurons=12, hidden_channels=16, latent_channels=4, num_blocks=1)
    model = SpikeAutoencoder(config=config)
    run = home / "runs" / "diffusion-tiny"
    save_model(
        run / "autoencoder",
        model.state_dict(),
        kind="autoencoder",
        config=config,
        extra={"data": DATA},
    )
    return home


def _ae_rates(home, spikes: np.ndarray) -> np.ndarray:
    model = SpikeAutoencoder.from_pretrained(home / "runs" / "diffusion-tiny" / "autoencoder")
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(spikes).float()).rates.numpy().astype(np.float64)


def _write(home, name: str, *, rates, spikes, kind: str | None, **conditions):
    metadata = {"run": str(home / "runs" / "diffusion-tiny"), "data": DATA}
    if kind is not None:
        metadata["condition"] = {"kind": kind, "source": "synthetic-maze:train"}
    return write_samples_npz(
        home / name,
        spikes=spikes,
        rates=rates.astype(np.float32),
        latents=np.zeros((*spikes.shape[:2], 4), np.float32),
        bin_seconds=0.005,
        metadata=metadata,
        **conditions,
    )


def _independent_fit(rates: np.ndarray, velocity: np.ndarray) -> Ridge:
    return Ridge(alpha=1e-6).fit(rates.reshape(-1, rates.shape[2]), velocity.reshape(-1, 2))


def test_real_trials_as_velocity_samples_score_the_decoders_own_r2(home, tmp_path) -> None:
    real = load_spikes("synthetic-maze:train", home)
    rates = _ae_rates(home, real.spikes)
    path = _write(
        home,
        "velocity.npz",
        rates=rates,
        spikes=real.spikes,
        kind="velocity",
        condition_velocity=real.conditions.velocity,
    )
    evaluation = evaluate_behavior(path, home=home, device=CPU, out_dir=tmp_path / "out")

    ridge = _independent_fit(rates, real.conditions.velocity)
    expected = r2_score(
        real.conditions.velocity.reshape(-1, 2),
        ridge.predict(rates.reshape(-1, 12)),
        multioutput="uniform_average",
    )
    assert evaluation.kinds == ["velocity"]
    assert evaluation.real == "synthetic-maze:train"  # the samples' dataset, by default
    assert evaluation.report.velocity_r2 == pytest.approx(expected, abs=1e-4)
    assert evaluation.train_r2 == pytest.approx(expected, abs=1e-4)
    for split in ("val", "test"):
        held = load_spikes(f"synthetic-maze:{split}", home)
        held_rates = _ae_rates(home, held.spikes)
        ceiling = r2_score(
            held.conditions.velocity.reshape(-1, 2),
            ridge.predict(held_rates.reshape(-1, 12)),
            multioutput="uniform_average",
        )
        assert evaluation.ceilings[split] == pytest.approx(ceiling, abs=1e-4)
    assert evaluation.report.decoder_r2 == pytest.approx(evaluation.ceilings["test"])
    assert evaluation.report.velocity_ok == (expected >= 0.7)

    payload = json.loads((tmp_path / "out" / "behavior.json").read_text())
    assert payload["velocity_r2"] == pytest.approx(expected, abs=1e-4)
    assert payload["bars"]["velocity_r2"]["bar"] == 0.7
    assert (tmp_path / "out" / "decoded_velocity.png").stat().st_size > 1000


def test_angle_samples_compare_the_decoded_reach_angle_at_the_datasets_bin(home) -> None:
    real = load_spikes("synthetic-maze:train", home)
    rates = _ae_rates(home, real.spikes)
    # Conditions shifted by 90° for half the samples: their errors move by exactly 90°.
    shifted = real.conditions.angle.copy()
    shifted[::2] += np.pi / 2
    path = _write(
        home,
        "angle.npz",
        rates=rates,
        spikes=real.spikes,
        kind="angle",
        condition_angle=shifted.astype(np.float32),
    )
    evaluation = evaluate_behavior(path, home=home, device=CPU, real="synthetic-maze:train")

    ridge = _independent_fit(rates, real.conditions.velocity)
    decoded = ridge.predict(rates.reshape(-1, 12)).reshape(rates.shape[0], -1, 2)
    errors = np.abs(angle_errors(reach_angle(decoded, SETTINGS.angle_bin), shifted))
    assert evaluation.angle_bin == SETTINGS.angle_bin == 20
    assert evaluation.kinds == ["angle"]
    assert evaluation.report.angle_within_fraction == pytest.approx(np.mean(errors <= 30.0))
    assert evaluation.report.angle_median_abs_error == pytest.approx(np.median(errors), abs=1e-3)
    assert evaluation.report.velocity_r2 is None
    assert evaluation.files == [] and evaluation.report_path is None  # no out_dir, no files


def test_samples_without_conditions_or_rates_and_real_data_without_velocity(home) -> None:
    real = load_spikes("synthetic-maze:train", home)
    rates = _ae_rates(home, real.spikes)
    plain = _write(home, "plain.npz", rates=rates, spikes=real.spikes, kind=None)
    with pytest.raises(DataError, match="no angle or velocity condition"):
        evaluate_behavior(plain, home=home, device=CPU)

    no_rates = home / "no_rates.npz"
    np.savez(no_rates, spikes=real.spikes, condition_angle=real.conditions.angle)
    with pytest.raises(DataError, match="no `rates`"):
        evaluate_behavior(no_rates, home=home, device=CPU)

    conditioned = _write(
        home,
        "angle2.npz",
        rates=rates,
        spikes=real.spikes,
        kind="angle",
        condition_angle=real.conditions.angle,
    )
    spikes_only = home / "spikes_only.npz"
    np.savez(spikes_only, spikes=real.spikes, bin_seconds=0.005)
    with pytest.raises(DataError, match="no hand velocity"):
        evaluate_behavior(conditioned, home=home, device=CPU, real=str(spikes_only))

    fewer = home / "fewer_neurons.npz"
    np.savez(
        fewer,
        spikes=real.spikes[:, :, :5],
        velocity=real.conditions.velocity,
        condition_velocity=real.conditions.velocity,
    )
    with pytest.raises(DataError, match="5 neurons|has 5"):
        evaluate_behavior(conditioned, home=home, device=CPU, real=str(fewer))
