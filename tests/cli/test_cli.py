"""One CLI test per subcommand through Typer's CliRunner, on tiny Lorenz models."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from neuralcli.cli.main import app
from neuralcli.data.sources.makin_remote import BROADBAND_RECORDS, SORTED_RECORD
from neuralcli.data.sources.zenodo import ZENODO_URL_ENV
from neuralcli.testing.cli import assert_one_line_error, invoke, invoke_json
from neuralcli.testing.raw_layouts import (
    fake_broadband,
    fake_makin_session,
    write_broadband_nwb1,
    write_makin_mat,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_preset_data):
    """Home with a tiny AE, a tiny diffusion model and samples, all made through the CLI."""
    home = tmp_path_factory.mktemp("home")
    preset = home / "tiny.yaml"
    preset.write_text(yaml.safe_dump(tiny_preset_data))
    ae = invoke_json(home, "train", "ae", "--preset", str(preset))
    diffusion = invoke_json(
        home, "train", "diffusion", "--preset", str(preset), "--ae", ae["run_dir"]
    )
    samples = invoke_json(
        home,
        "sample",
        "--model",
        diffusion["run_dir"],
        "--n",
        "12",
        "--sampler",
        "ddim",
        "--steps",
        "5",
    )
    return {"home": home, "preset": preset, "ae": ae, "diffusion": diffusion, "samples": samples}


def test_help_lists_the_command_tree_with_examples():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in (
        "info",
        "demo",
        "data",
        "train",
        "sample",
        "evaluate",
        "distill",
        "infer",
        "decode",
    ):
        assert command in result.output
    for path in (
        ["data", "fetch"],
        ["data", "list"],
        ["data", "segment"],
        ["data", "info"],
        ["train", "ae"],
        ["train", "diffusion"],
        ["train", "teacher"],
        ["train", "student"],
        ["distill"],
        ["infer"],
        ["decode"],
        ["sample"],
        ["evaluate", "samples"],
        ["evaluate", "decoding"],
        ["demo"],
        ["info"],
    ):
        sub = runner.invoke(app, [*path, "--help"])
        assert sub.exit_code == 0, path
        assert re.search(r"Examples?: neuralcli", sub.output), path


def test_info_json(tmp_path):
    payload = invoke_json(tmp_path, "info")
    assert payload["torch"]
    assert payload["home"] == str(tmp_path.resolve())
    assert "fp32" in payload["precisions"]


def test_data_fetch_and_list(tmp_path):
    fetched = invoke_json(
        tmp_path,
        "data",
        "fetch",
        "lorenz",
        "--n-trials",
        "20",
        "--length",
        "16",
        "--n-neurons",
        "8",
    )
    assert Path(fetched["directory"]).is_dir()
    assert fetched["already_present"] is False
    again = invoke_json(
        tmp_path,
        "data",
        "fetch",
        "lorenz",
        "--n-trials",
        "20",
        "--length",
        "16",
        "--n-neurons",
        "8",
    )
    assert again["already_present"] is True
    listing = invoke_json(tmp_path, "data", "list")
    lorenz = next(d for d in listing["datasets"] if d["name"] == "lorenz")
    assert lorenz["present"] is True
    assert lorenz["variants"][0]["hash"] == fetched["settings_hash"]
    assert lorenz["variants"][0]["n_trials"] == 20


def test_data_fetch_bad_input(tmp_path):
    assert_one_line_error(invoke(tmp_path, "data", "fetch", "nosuch"), "unknown dataset", "lorenz")
    assert_one_line_error(
        invoke(tmp_path, "data", "fetch", "lorenz", "--n-trials", "0"), "n_trials"
    )


def test_train_ae_writes_a_complete_run(trained):
    run_dir = Path(trained["ae"]["run_dir"])
    for name in ("config.yaml", "model.safetensors", "model.json", "state.pt", "metrics.jsonl"):
        assert (run_dir / name).is_file(), name
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["kind"] == "autoencoder"
    assert meta["data"]["dataset"] == "lorenz"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["hidden_channels"] == 32
    assert np.isfinite(trained["ae"]["train_loss"])


def test_train_ae_resume_of_a_finished_run_is_a_no_op(trained):
    home, preset = trained["home"], trained["preset"]
    again = invoke_json(home, "train", "ae", "--preset", str(preset), "--resume")
    assert again["steps"] == trained["ae"]["steps"]


def test_train_ae_refuses_to_overwrite_without_resume(trained):
    home, preset = trained["home"], trained["preset"]
    result = invoke(home, "train", "ae", "--preset", str(preset))
    assert_one_line_error(result, "--resume")


def test_preset_typo_and_bad_override(tmp_path, tiny_preset):
    assert_one_line_error(
        invoke(tmp_path, "train", "ae", "--preset", str(tiny_preset), "--set", "training.lrr=1"),
        "training.lrr",
        "did you mean 'training.lr'",
    )
    assert_one_line_error(invoke(tmp_path, "train", "ae", "--preset", "lorenzz"), "lorenz")
    assert_one_line_error(
        invoke(tmp_path, "train", "ae", "--preset", str(tiny_preset), "--device", "tpu"), "--device"
    )
    assert not (tmp_path / "runs").exists()


def test_train_diffusion_copies_the_autoencoder(trained):
    run_dir = Path(trained["diffusion"]["run_dir"])
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["kind"] == "denoiser"
    assert len(meta["latent_stats"]["mean"]) == 4
    assert (run_dir / "autoencoder" / "model.safetensors").is_file()


def test_train_diffusion_needs_an_autoencoder_run(tmp_path, tiny_preset):
    result = invoke(tmp_path, "train", "diffusion", "--preset", str(tiny_preset), "--ae", "missing")
    assert_one_line_error(result, "missing", "not found")


def test_sample_writes_npz_and_nwb(trained):
    samples = trained["samples"]
    with np.load(samples["npz"]) as archive:
        assert archive["spikes"].shape == (12, 32, 16)
        assert archive["latents"].shape == (12, 32, 4)
    assert Path(samples["nwb"]).is_file()


def test_sample_any_length(trained, tmp_path):
    out = tmp_path / "long.npz"
    payload = invoke_json(
        trained["home"],
        "sample",
        "--model",
        trained["diffusion"]["run_dir"],
        "--n",
        "2",
        "--length",
        "96",
        "--sampler",
        "ddim",
        "--steps",
        "3",
        "--out",
        str(out),
        "--no-nwb",
    )
    assert payload["length"] == 96
    with np.load(out) as archive:
        assert archive["spikes"].shape == (2, 96, 16)


def test_sample_bad_input(trained, tmp_path):
    home, model = trained["home"], trained["diffusion"]["run_dir"]
    assert_one_line_error(invoke(home, "sample", "--model", model, "--n", "-3"), "--n")
    assert_one_line_error(invoke(home, "sample", "--model", model, "--device", "tpu"), "--device")
    assert_one_line_error(invoke(home, "sample", "--model", str(tmp_path / "gone")), "not found")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text("{")
    assert_one_line_error(invoke(home, "sample", "--model", str(broken)), "corrupt")
    assert_one_line_error(
        invoke(home, "sample", "--model", trained["ae"]["run_dir"]), "not 'denoiser'"
    )
    assert list(tmp_path.glob("**/*.npz")) == []


def test_evaluate_samples_json_and_plots(trained, tmp_path):
    payload = invoke_json(
        trained["home"],
        "evaluate",
        "samples",
        "--samples",
        trained["samples"]["npz"],
        "--real",
        "lorenz:test",
        "--plots",
        str(tmp_path / "plots"),
    )
    keys = (
        "kl_population_count",
        "rmse_correlation",
        "rmse_mean_isi",
        "rmse_std_isi",
        "mean_rate_error",
        "pearson_mean_isi",
        "pearson_std_isi",
        "pearson_correlation",
        "pearson_population_count",
    )
    for key in keys:
        assert key in payload and key in payload["floor"], key
    assert payload["n_samples"] == 12
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"raster.png", "mean_rate.png"}


def test_evaluate_accepts_plain_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, spikes=rng.poisson(0.3, size=(20, 30, 6)))
    np.savez(b, spikes=rng.poisson(0.3, size=(24, 30, 6)), bin_seconds=0.005)
    payload = invoke_json(
        tmp_path, "evaluate", "samples", "--samples", str(a), "--real", str(b), "--no-plots"
    )
    assert payload["n_real"] == 24
    assert payload["bin_seconds"] == 0.005


def test_evaluate_bad_npz(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, spikes=np.zeros((4, 5, 3)))
    no_spikes = tmp_path / "nospikes.npz"
    np.savez(no_spikes, counts=np.zeros((4, 5, 3)))
    rank2 = tmp_path / "rank2.npz"
    np.savez(rank2, spikes=np.zeros((4, 5)))
    assert_one_line_error(
        invoke(tmp_path, "evaluate", "samples", "--samples", str(no_spikes), "--real", str(good)),
        "nospikes.npz",
        "spikes",
    )
    assert_one_line_error(
        invoke(tmp_path, "evaluate", "samples", "--samples", str(rank2), "--real", str(good)),
        "rank2.npz",
    )
    assert not (tmp_path / "plots").exists()


def test_demo_runs_end_to_end(tmp_path, tiny_preset):
    payload = invoke_json(tmp_path, "demo", "--preset", str(tiny_preset), "--steps", "5")
    evaluation = payload["evaluation"]
    assert evaluation["n_samples"] == evaluation["n_real"]
    assert Path(payload["samples"]).is_file()
    assert all(Path(p).is_file() for p in evaluation["plots"])


def test_core_packages_do_not_import_typer():
    code = (
        "import sys, neuralcli.models, neuralcli.pipelines, neuralcli.pipelines.demo; "
        "assert 'typer' not in sys.modules and 'rich' not in sys.modules, 'cli leaked'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_ddim_eta(trained, tmp_path):
    home, model = trained["home"], trained["diffusion"]["run_dir"]
    common = ["sample", "--model", model, "--n", "3", "--sampler", "ddim", "--steps", "4"]
    first = tmp_path / "eta0.npz"
    again = tmp_path / "eta0-again.npz"
    for out in (first, again):
        invoke_json(home, *common, "--eta", "0", "--out", str(out), "--no-nwb")
    with np.load(first) as a, np.load(again) as b:
        np.testing.assert_array_equal(a["latents"], b["latents"])  # deterministic for a seed
        assert json.loads(str(a["metadata_json"]))["eta"] == 0.0
    assert_one_line_error(invoke(home, *common, "--eta", "1.5"), "--eta")


# Paired datasets. Makin comes from a fake Zenodo on 127.0.0.1 serving tiny files written in
# the published layouts; nothing touches the network.
SESSION = "20160622_01"
RATE = 24414.0625 / 16  # a slow broadband keeps the test fast; decimation 2 below


def test_synthetic_reach_fetch_info_segment_list(tmp_path):
    fetched = invoke_json(
        tmp_path,
        "data",
        "fetch",
        "synthetic-reach",
        "--sessions",
        "2",
        "--seed",
        "1",
        "--set",
        "simulation.seconds_per_session=100",
    )
    assert [s["session"] for s in fetched["sessions"]] == ["s00", "s01"]
    info = invoke_json(tmp_path, "data", "info", "synthetic-reach:s01")
    (session,) = info["sessions"]
    assert session["settings_hash"] == fetched["settings_hash"]
    assert session["spikes_r2"] > session["lfp_r2"]
    listed = invoke_json(tmp_path, "data", "list", "synthetic-reach")
    (status,) = listed["datasets"]
    assert status["present"] and status["variants"][0]["n_trials"] > 0
    again = invoke_json(
        tmp_path, "data", "fetch", "synthetic-reach", "--sessions", "2", "--seed", "1",
        "--set", "simulation.seconds_per_session=100",
    )  # fmt: skip
    assert {s["status"] for s in again["sessions"]} == {"skipped"}


@pytest.fixture()
def fake_zenodo(httpserver, tmp_path, monkeypatch):
    """Record 3854034 with indy_<SESSION>.mat; the first broadband record with its .nwb."""
    files = tmp_path / "published"
    files.mkdir()
    fake = fake_makin_session(5, duration_seconds=45.0, n_channels=3)
    write_makin_mat(files / f"indy_{SESSION}.mat", **fake._asdict())
    write_broadband_nwb1(
        files / f"indy_{SESSION}.nwb",
        data_int16=fake_broadband(2, 3, sampling_rate=RATE),
        n_samples=int(47.0 * RATE),
        n_channels=3,
        sampling_rate=RATE,
    )
    for record_id, name in ((SORTED_RECORD, "mat"), (BROADBAND_RECORDS[0], "nwb")):
        body = (files / f"indy_{SESSION}.{name}").read_bytes()
        key = f"indy_{SESSION}.{name}"
        url = httpserver.url_for(f"/api/records/{record_id}/files/{key}/content")
        listing = {
            "id": record_id,
            "metadata": {"title": f"record {record_id}"},
            "files": [
                {
                    "key": key,
                    "size": len(body),
                    "checksum": "md5:" + hashlib.md5(body).hexdigest(),
                    "links": {"self": url},
                }
            ],
        }
        httpserver.expect_request(f"/api/records/{record_id}").respond_with_json(listing)
        httpserver.expect_request(
            f"/api/records/{record_id}/files/{key}/content"
        ).respond_with_data(body)
    monkeypatch.setenv(ZENODO_URL_ENV, httpserver.url_for("/").rstrip("/"))
    return httpserver


def test_makin_fetch_segment_info(tmp_path, fake_zenodo):
    home = tmp_path / "home"
    planned = invoke_json(home, "data", "fetch", "makin", "--sessions", SESSION, "--dry-run")
    assert {f["status"] for f in planned["files"]} == {"planned"}
    assert not (home / "raw" / "makin" / f"indy_{SESSION}.mat").exists()
    fetched = invoke_json(home, "data", "fetch", "makin", "--sessions", f"MonkeyI_{SESSION}")
    assert sorted(f["status"] for f in fetched["files"]) == ["downloaded", "downloaded"]
    listed = invoke_json(home, "data", "list", "makin")
    row = next(r for r in listed["sessions"] if r["session"] == SESSION)
    assert row["verified"] == [True, True] and row["segmented"] == []
    segmented = invoke_json(
        home, "data", "segment", "makin", "--sessions", SESSION, "--max-memory", "64MiB",
        "--set", "lfp.decimation=2", "--set", "min_rate_hz=0",
    )  # fmt: skip
    (outcome,) = segmented["sessions"]
    assert outcome["status"] == "written" and outcome["n_channels"] == 3
    info = invoke_json(home, "data", "info", f"makin:{SESSION}")
    assert info["sessions"][0]["settings_hash"] == segmented["settings_hash"]
    listed = invoke_json(home, "data", "list", "makin")
    row = next(r for r in listed["sessions"] if r["session"] == SESSION)
    assert row["segmented"] == [segmented["settings_hash"]]
    table = invoke(home, "data", "list", "makin")
    assert table.exit_code == 0 and "verified" in table.stdout


def test_paired_bad_input_is_one_line(tmp_path):
    assert_one_line_error(
        invoke(tmp_path, "data", "segment", "makin", "--sessions", "20160622_02"),
        "did you mean 20160622_01",
    )
    assert_one_line_error(
        invoke(tmp_path, "data", "segment", "makin", "--max-memory", "lots"), "--max-memory"
    )
    assert_one_line_error(
        invoke(tmp_path, "data", "segment", "makin", "--set", "lfp.lowpas_hz=40"),
        "did you mean 'lfp.lowpass_hz'",
    )
    assert_one_line_error(invoke(tmp_path, "data", "fetch", "lorenz", "--from", "x"), "--from")
    assert_one_line_error(invoke(tmp_path, "data", "fetch", "flint"), "--accept-terms")
    empty = tmp_path / "downloads"
    empty.mkdir()
    assert_one_line_error(
        invoke(tmp_path, "data", "fetch", "flint", "--from", str(empty)), "Flint_2012_e1.mat"
    )
    assert_one_line_error(invoke(tmp_path, "data", "segment", "lorenz"), "not segmented")
    assert_one_line_error(invoke(tmp_path, "data", "info", "makin:20160622_01"), "not segmented")
    assert_one_line_error(
        invoke(tmp_path, "data", "fetch", "synthetic-reach", "--sessions", "a,b"), "count"
    )
    assert not (tmp_path / "processed").exists()
