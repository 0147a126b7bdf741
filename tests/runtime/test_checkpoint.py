from dataclasses import dataclass

import pytest
import torch

from neuralcli.errors import RunDirError
from neuralcli.runtime.checkpoint import (
    load_state,
    load_weights,
    read_model_meta,
    save_model,
    save_state,
)
from neuralcli.runtime.files import atomic_path, atomic_write_text


@dataclass
class TinyConfig:
    width: int = 3


def test_save_and_read_model(tmp_path):
    weights = {"w": torch.arange(6.0).reshape(2, 3)}
    save_model(tmp_path, weights, kind="tiny", config=TinyConfig(), extra={"step": 7})
    meta = read_model_meta(tmp_path, expected_kind="tiny")
    assert meta["config"] == {"width": 3}
    assert meta["step"] == 7
    assert "torch" in meta["versions"]
    assert torch.equal(load_weights(tmp_path)["w"], weights["w"])


def test_wrong_kind_missing_and_corrupt_run_dirs(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        read_model_meta(tmp_path / "nope")
    with pytest.raises(RunDirError, match="model.json is missing"):
        read_model_meta(tmp_path)
    save_model(tmp_path, {"w": torch.zeros(1)}, kind="tiny", config={"a": 1})
    with pytest.raises(RunDirError, match="holds a 'tiny' model, not 'denoiser'"):
        read_model_meta(tmp_path, expected_kind="denoiser")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(RunDirError, match="corrupt"):
        read_model_meta(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunDirError, match="corrupt"):
        load_weights(tmp_path)


def test_state_round_trip_and_truncated_state(tmp_path):
    save_state(tmp_path, {"step": 3, "rng": torch.get_rng_state()})
    assert load_state(tmp_path)["step"] == 3
    data = (tmp_path / "state.pt").read_bytes()
    (tmp_path / "state.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunDirError, match="corrupt"):
        load_state(tmp_path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
