"""`evaluate samples --bootstrap` (LDNS Table 1), `evaluate behavior` and `train spike-history`
through the CLI, on a tiny synthetic-maze dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from neuralcli.data.samples import write_samples_npz
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.data.synthetic_maze_dataset import prepare_synthetic_maze
from neuralcli.evaluation.table1 import DATA_VS_DATA, PUBLISHED_TABLE1, bootstrap_table
from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.pipelines.data import load_spikes
from neuralcli.pipelines.evaluate_table1 import is_published_reference
from neuralcli.runtime.checkpoint import save_model
from neuralcli.testing.cli import assert_one_line_error, invoke, invoke_json

runner = CliRunner()
SETTINGS = SyntheticMazeSettings(n_trials=60, n_neurons=12, n_bins=60, onset_bin=20, angle_bin=20)
DATA = {"dataset": "synthetic-maze", "settings": SETTINGS.to_dict()}  # as model.json has it
AE_CONFIG = AutoencoderConfig(n_neurons=12, hidden_channels=16, latent_channels=4, num_blocks=1)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """Prepared synthetic-maze data (48 train trials, 60 bins, 12 neurons), a random AE run
    (runs/ae-tiny) and a diffusion run folder holding a copy of it."""
    home = tmp_path_factory.mktemp("ldns-eval-home")
    prepare_synthetic_maze(home, SETTINGS)
    torch.manual_seed(0)
    state = SpikeAutoencoder(config=AE_CONFIG).state_dict()
    for folder in (home / "runs" / "ae-tiny", home / "runs" / "diffusion-tiny" / "autoencoder"):
        save_model(folder, state, kind="autoencoder", config=AE_CONFIG, extra={"data": DATA})
    return home


def _samples(home: Path, name: str, *, seed: int, n: int = 40, n_neurons: int = 12, **extra):
    """Random Poisson samples in the `neuralcli sample` format."""
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.05, 0.4, size=(n, SETTINGS.n_bins, n_neurons)).astype(np.float32)
    metadata = {"run": str(home / "runs" / "diffusion-tiny"), "data": DATA}
    if "condition_angle" in extra:
        metadata["condition"] = {"kind": "angle", "source": "synthetic-maze:train"}
    return write_samples_npz(
        home / name,
        spikes=rng.poisson(rates).astype(np.uint8),
        rates=rates,
        latents=np.zeros((n, SETTINGS.n_bins, 4), np.float32),
        bin_seconds=SETTINGS.bin_seconds,
        metadata=metadata,
        **extra,
    )


def test_bootstrap_table1_for_two_methods_matches_the_library(home, tmp_path) -> None:
    first = _samples(home, "method-a.npz", seed=1)
    second = _samples(home, "method-b.npz", seed=2, n=30)
    out = tmp_path / "table1"
    payload = invoke_json(
        home,
        "evaluate",
        "samples",
        "--samples",
        str(first),
        "--samples",
        str(second),
        "--real",
        "synthetic-maze:train",
        "--bootstrap",
        "3",
        "--seed",
        "7",
        "--out",
        str(out),
        "--no-plots",
    )
    assert [row["method"] for row in payload["rows"]] == ["method-a", "method-b", DATA_VS_DATA]
    assert payload["n_reference"] == 48 and payload["n_bootstraps"] == 3
    assert payload["published"] is None  # not MC_Maze: no published rows

    real = load_spikes("synthetic-maze:train", home).spikes
    expected = bootstrap_table(
        real,
        {"method-a": load_spikes(first, home).spikes, "method-b": load_spikes(second, home).spikes},
        n_bootstraps=3,
        seed=7,
        bin_seconds=SETTINGS.bin_seconds,
    )
    for row in payload["rows"]:
        reference = expected.row(row["method"])
        assert len(row["bootstraps"]) == 3
        for name in ("kl_population_count", "rmse_correlation", "rmse_mean_isi", "rmse_std_isi"):
            assert row["mean"][name] == pytest.approx(reference.mean[name])
            assert row["std"][name] == pytest.approx(reference.std[name])
    assert payload["rows"][0]["mean"]["kl_population_count"] > 0

    assert [p.name for p in out.iterdir()] == ["table1.json"]
    assert json.loads((out / "table1.json").read_text())["rows"] == payload["rows"]


def test_bootstrap_table_text_plots_and_published_rows(home, tmp_path) -> None:
    angles = np.random.default_rng(5).uniform(-np.pi, np.pi, 40).astype(np.float32)
    samples = _samples(home, "method-c.npz", seed=3, condition_angle=angles)
    args = ["evaluate", "samples", "--samples", str(samples), "--real", "synthetic-maze:train"]
    result = invoke(home, *args, "--bootstrap", "2", "--published")
    assert result.exit_code == 0, result.output
    assert "Table 1" in result.stdout and "method-c" in result.stdout
    assert "AutoLFADS" in result.stdout and "published rows: LDNS §13.1" in result.stdout
    out = tmp_path / "table1"
    payload = invoke_json(home, *args, "--bootstrap", "2", "--published", "--out", str(out))
    # Real vs sampled figures per method; per-condition mean rates as the samples carry angles.
    assert {p.name for p in (out / "method-c").iterdir()} >= {"raster.png", "condition_rates.png"}
    assert str(out / "table1.json") in payload["files"]
    published = {row["method"]: row for row in payload["published"]}
    assert (
        published["LDNS"]["kl_population_count"]
        == PUBLISHED_TABLE1["LDNS"]["kl_population_count"][0]
    )
    assert is_published_reference("mc_maze:train")
    assert not is_published_reference("synthetic-maze:train")
    assert not is_published_reference("mc_maze:test")  # §11.2: the reference is the train split


def test_evaluate_samples_bad_input_is_one_line(home) -> None:
    good = _samples(home, "good.npz", seed=4)
    real = ["--real", "synthetic-maze:train"]
    assert_one_line_error(
        invoke(home, "evaluate", "samples", "--samples", str(good), *real, "--bootstrap", "0"),
        "--bootstrap 0",
    )
    missing = home / "missing.npz"
    assert_one_line_error(
        invoke(home, "evaluate", "samples", "--samples", str(missing), *real, "--bootstrap", "2"),
        "missing.npz",
    )
    wide = _samples(home, "wide.npz", seed=4, n_neurons=13)
    assert_one_line_error(
        invoke(home, "evaluate", "samples", "--samples", str(wide), *real, "--bootstrap", "2"),
        "13 neurons",
    )
    assert_one_line_error(
        invoke(home, "evaluate", "samples", "-s", str(good), "-s", str(good), *real),
        "--bootstrap",
    )
    assert_one_line_error(
        invoke(
            home, "evaluate", "samples", "-s", str(good), *real, "--bootstrap", "2", "--plots", "p"
        ),
        "--out",
    )


def test_evaluate_behavior_cli(home, tmp_path) -> None:
    real = load_spikes("synthetic-maze:train", home)
    angles = real.conditions.angle
    samples = _samples(home, "angle-samples.npz", seed=6, n=48, condition_angle=angles)
    payload = invoke_json(
        home, "evaluate", "behavior", "--samples", str(samples), "--out", str(tmp_path / "b")
    )
    assert payload["kinds"] == ["angle"] and payload["n_angle_samples"] == 48
    assert payload["real"] == "synthetic-maze:train"
    assert set(payload["decoder_ceiling_r2"]) == {"val", "test"}
    assert payload["bars"]["angle_within_fraction"]["met"] == (
        payload["angle_within_fraction"] >= 0.8
    )
    assert {p.name for p in (tmp_path / "b").iterdir()} == {
        "behavior.json",
        "angle_errors.png",
        "condition_rates.png",
    }
    text = invoke(home, "evaluate", "behavior", "--samples", str(samples))
    assert text.exit_code == 0, text.output
    assert "met" in text.stdout or "missed" in text.stdout

    plain = _samples(home, "unconditioned.npz", seed=6)
    assert_one_line_error(
        invoke(home, "evaluate", "behavior", "--samples", str(plain)), "no angle or velocity"
    )


def test_train_spike_history_from_an_ae_run(home) -> None:
    payload = invoke_json(
        home,
        "train",
        "spike-history",
        "--ae",
        "ae-tiny",
        "--set",
        "training.epochs=3",
        "--set",
        "model.history_bins=5",
    )
    run_dir = Path(payload["run_dir"])
    assert run_dir.name == "spike-history-tiny"  # named after the AE
    assert payload["epochs"] == 3 and payload["steps"] == 3  # full batch: a step per epoch
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["kind"] == "spike-history"
    assert meta["config"]["n_neurons"] == 12 and meta["config"]["history_bins"] == 5
    assert meta["data"]["dataset"] == "synthetic-maze"
    assert Path(meta["ae_source"]).name == "ae-tiny"
    assert meta["train_length"] == SETTINGS.n_bins


def test_train_spike_history_with_a_preset(home, tmp_path) -> None:
    preset = tmp_path / "glm.yaml"
    section = {
        "name": "glm-preset",
        "model": {"n_neurons": 12, "history_bins": 4},
        "training": {"epochs": 2, "warmup_epochs": 0, "lr": 0.1, "val_every_epochs": 1},
    }
    preset.write_text(yaml.safe_dump({"spike-history": section}))
    payload = invoke_json(
        home, "train", "spike-history", "--ae", "ae-tiny", "--preset", str(preset)
    )
    assert Path(payload["run_dir"]).name == "glm-preset" and payload["val_loss"] is not None
    section["model"]["n_neurons"] = 7
    preset.write_text(yaml.safe_dump({"spike-history": section}))
    assert_one_line_error(
        invoke(home, "train", "spike-history", "--ae", "ae-tiny", "--preset", str(preset)),
        "model.n_neurons=12",
    )
