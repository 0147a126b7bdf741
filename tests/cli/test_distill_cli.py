"""The distillation commands end to end through the CLI, on a tiny synthetic-reach dataset:
train teacher / student (+ fine-tune), distill, infer, decode, evaluate decoding; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from neuralcli.data.paired import PairedDataset
from neuralcli.data.store import SessionReader
from neuralcli.runtime.checkpoint import read_model_meta
from neuralcli.testing.cli import assert_one_line_error, invoke, invoke_json

runner = CliRunner()

TRAINING = {
    "epochs": 2,
    "batch_size": 4,
    "lr": 3.0e-3,
    "warmup_epochs": 0,
    "val_every_epochs": 1,
    "checkpoint_every_steps": 50,
    "log_every_steps": 2,
}
LFP_MODEL = {"patch_size": 19, "d_model": 32, "num_layers": 1, "num_heads": 2, "mlp_ratio": 2.0}
TINY = {
    "data": {"dataset": "synthetic-reach", "sessions": ["s00", "s01"]},
    "teacher": {
        "name": "teacher-tiny",
        "model": {
            "patch_size": 32,
            "d_model": 32,
            "num_layers": 1,
            "num_heads": 2,
            "predictor_d_model": 8,
            "predictor_layers": 1,
            "predictor_heads": 2,
            "mlp_ratio": 2.0,
        },
        "training": TRAINING,
    },
    "student": {"name": "lfp-tiny", "model": LFP_MODEL, "training": TRAINING},
    "distill": {
        "teacher": "teacher-tiny",
        "model": {**LFP_MODEL, "mask_token": False},
        "training": TRAINING,
    },
}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Three 40 s sessions cut into 1 s segments (100 steps, to keep the models' work small);
    a teacher on s00-s01, MS-LFP on all three, s01 distilled."""
    home = tmp_path_factory.mktemp("home")
    preset = home / "tiny.yaml"
    preset.write_text(yaml.safe_dump(TINY))
    invoke_json(
        home,
        "data",
        "fetch",
        "synthetic-reach",
        "--sessions",
        "3",
        "--set",
        "simulation.seconds_per_session=40",
        "--set",
        "segment.parent_seconds=2",
        "--set",
        "segment.segment_seconds=1",
    )
    teacher = invoke_json(home, "train", "teacher", "--preset", str(preset))
    student = invoke_json(
        home, "train", "student", "--preset", str(preset), "--sessions", "s00,s01,s02"
    )
    distilled = invoke_json(home, "distill", "--preset", str(preset), "--session", "s01")
    return {
        "home": home,
        "preset": preset,
        "teacher": Path(teacher["run_dir"]),
        "student": Path(student["run_dir"]),
        "distilled": Path(distilled["run_dir"]),
    }


def test_runs_record_their_vocabulary_and_data(chain):
    teacher = read_model_meta(chain["teacher"], expected_kind="spike-teacher")
    assert list(teacher["sessions"]) == ["s00", "s01"]
    assert teacher["data"]["sessions"] == ["s00", "s01"]
    student = read_model_meta(chain["student"], expected_kind="lfp-encoder")
    assert list(student["sessions"]) == ["s00", "s01", "s02"]
    assert set(student["sessions"].values()) == {38}  # one array shared by every session
    distilled = read_model_meta(chain["distilled"], expected_kind="lfp-encoder")
    assert chain["distilled"].name == "distilled-s01"
    assert list(distilled["sessions"]) == ["s01"]
    assert distilled["teacher"] == str(chain["teacher"])
    for run in ("teacher", "student", "distilled"):
        lines = (chain[run] / "metrics.jsonl").read_text().splitlines()
        assert any("val_loss" in json.loads(line) for line in lines)


def test_distill_metrics_hold_both_terms(chain):
    records = [
        json.loads(x) for x in (chain["distilled"] / "metrics.jsonl").read_text().splitlines()
    ]
    train = [r for r in records if "cosine" in r]
    assert train and all(-1.0 <= r["cosine"] <= 1.0 for r in train)
    assert all(r["reconstruction_mse"] >= 0 for r in train)


def test_infer_writes_one_embedding_per_step_for_every_segment(chain, tmp_path):
    out = tmp_path / "emb.h5"
    result = invoke_json(
        chain["home"],
        "infer",
        "--model",
        "distilled-s01",
        "--data",
        "synthetic-reach:s02",
        "--out",
        str(out),
    )
    assert result["sessions"][0]["as_session"] == "s01"  # the single-table model's own table
    files = sorted((chain["home"] / "processed" / "synthetic-reach").glob("*/s02.h5"))
    with SessionReader(files[0]) as reader:
        n_segments, length = reader.shape("lfp")[:2]
        splits = reader.segments["split"]
    with h5py.File(out, "r") as f:
        group = f["sessions/s02"]
        assert group["embeddings"].shape == (n_segments, length, 32)
        assert group["velocity"].shape == (n_segments, length, 2)
        assert list(group["split"].asstr()[()]) == list(splits)
        assert group.attrs["as_session"] == "s01"
        assert f.attrs["model_kind"] == "lfp-encoder"
    decoded = invoke_json(chain["home"], "decode", str(out))
    row = decoded["sessions"][0]
    assert row["session"] == "s02" and np.isfinite(row["heldout_r2"])


def test_infer_matches_a_direct_encode(chain, tmp_path):
    import torch

    from neuralcli.data.paired import collate_paired
    from neuralcli.models.lfp_encoder import LfpEncoder

    out = tmp_path / "emb.h5"
    invoke_json(
        chain["home"],
        "infer",
        "--model",
        "lfp-tiny",
        "--data",
        "synthetic-reach:s00",
        "--out",
        str(out),
        "--batch-size",
        "3",
    )
    files = sorted((chain["home"] / "processed" / "synthetic-reach").glob("*/s00.h5"))
    data = PairedDataset(files, split=None)
    batch = collate_paired(data.items([0, 1]))
    model = LfpEncoder.from_pretrained(chain["student"])
    expected = model.encode(batch.lfp, torch.zeros(2, dtype=torch.int64), batch.n_channels)
    with h5py.File(out, "r") as f:
        stored = f["sessions/s00/embeddings"][:2]
    np.testing.assert_allclose(stored, expected.numpy(), rtol=1e-4, atol=1e-5)


def test_finetune_adds_a_session_and_trains_only_its_table(chain):
    home = chain["home"]
    tuned = invoke_json(
        home,
        "train",
        "teacher",
        "--preset",
        str(chain["preset"]),
        "--finetune",
        "teacher-tiny",
        "--sessions",
        "s02",
        "--set",
        "finetune.scope=new-sessions",
        "--name",
        "teacher-tiny-s02",
    )
    meta = read_model_meta(tuned["run_dir"])
    assert list(meta["sessions"]) == ["s00", "s01", "s02"]
    from safetensors.numpy import load_file

    before = load_file(chain["teacher"] / "model.safetensors")
    after = load_file(Path(tuned["run_dir"]) / "model.safetensors")
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert changed and all("space" in k or "embedding" in k for k in changed), changed


def test_evaluate_decoding_compares_models_per_session(chain, tmp_path):
    result = invoke_json(
        chain["home"],
        "evaluate",
        "decoding",
        "--models",
        "lfp-tiny,distilled-s01",
        "--sessions",
        "s02",
        "--out",
        str(tmp_path / "eval"),
    )
    assert result["baseline"] == "lfp-tiny"
    assert [row["session"] for row in result["sessions"]][0] == "s02"
    assert (tmp_path / "eval" / "decoding.png").read_bytes()[:4] == b"\x89PNG"
    stored = json.loads((tmp_path / "eval" / "decoding.json").read_text())
    assert stored["models"] == ["lfp-tiny", "distilled-s01"]


def test_distill_bad_input_is_one_line(chain):
    home, preset = chain["home"], str(chain["preset"])
    result = invoke(home, "distill", "--preset", preset, "--session", "s02")
    assert_one_line_error(result, "has no session 's02'", "fine-tune")
    result = invoke(home, "distill", "--preset", preset)
    assert_one_line_error(result, "--session")
    result = invoke(
        home, "distill", "--preset", preset, "--session", "s01", "--set", "model.d_model=64"
    )
    assert_one_line_error(result, "d_model", "32")


def test_infer_bad_input_is_one_line(chain, tmp_path):
    home = chain["home"]
    out = str(tmp_path / "x.h5")
    result = invoke(
        home, "infer", "--model", "teacher-tiny", "--data", "synthetic-reach:s02", "--out", out
    )
    assert_one_line_error(result, "no space embedding for session s02", "--as-session")
    result = invoke(
        home,
        "infer",
        "--model",
        "lfp-tiny",
        "--data",
        "synthetic-reach:s01",
        "--as-session",
        "s09",
        "--out",
        out,
    )
    assert_one_line_error(result, "--as-session s09")
    result = invoke(
        home,
        "infer",
        "--model",
        "teacher-tiny",
        "--data",
        "synthetic-reach:s02",
        "--as-session",
        "s00",
        "--out",
        out,
    )
    assert_one_line_error(result, "units")
    assert not Path(out).exists()


def test_distilling_a_session_without_spikes_is_refused(chain, tmp_path):
    import shutil

    from neuralcli.data.store import read_session, write_session

    home = tmp_path / "home"
    shutil.copytree(chain["home"] / "processed", home / "processed")
    shutil.copytree(chain["home"] / "runs", home / "runs")
    path = sorted((home / "processed" / "synthetic-reach").glob("*/s01.h5"))[0]
    data = read_session(path)
    data.arrays["spikes"][:] = 0
    write_session(
        path,
        arrays=data.arrays,
        segments=data.segments,
        attrs=data.attrs,
        channel_names=data.channel_names,
        units=data.units,
    )
    result = invoke(home, "distill", "--preset", str(chain["preset"]), "--session", "s01")
    assert_one_line_error(result, "has no spikes")
