"""`neuralcli decode` through Typer's CliRunner on a tiny synthetic embeddings file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from neuralcli.cli.main import app
from neuralcli.data.embeddings import EmbeddingWriter, SessionEmbeddings
from neuralcli.pipelines.decode import decode_embeddings
from neuralcli.testing.cli import assert_one_line_error

runner = CliRunner()


def invoke(home, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


def session(name: str, *, seed: int, split=None, velocity: bool = True) -> SessionEmbeddings:
    rng = np.random.default_rng(seed)
    n, length, dim = 10, 8, 3
    embeddings = rng.normal(size=(n, length, dim)).astype(np.float32)
    noise = 0.3 * rng.normal(size=(n, length, 2))
    target = (embeddings @ rng.normal(size=(dim, 2)) + noise).astype(np.float32)
    return SessionEmbeddings(
        session=name,
        embeddings=embeddings,
        velocity=target if velocity else None,
        segment_id=np.arange(n),
        split=np.array(split or ["train"] * 6 + ["val", "val", "test", "test"]),
        start_time=None,
        attrs={},
    )


def write(path, *sessions: SessionEmbeddings):
    with EmbeddingWriter(path, attrs={"model": "runs/tiny", "model_kind": "lfp"}) as writer:
        for item in sessions:
            writer.add_session(item)
    return path


@pytest.fixture
def embeddings_file(tmp_path):
    return write(tmp_path / "emb.h5", session("indy_a", seed=0), session("indy_b", seed=1))


def test_decode_prints_a_table_and_json(tmp_path, embeddings_file):
    expected = decode_embeddings(embeddings_file)

    result = invoke(tmp_path, "decode", str(embeddings_file))
    assert result.exit_code == 0, result.output
    for text in ("indy_a", "indy_b", "mean (2)", "val+test R²", f"{expected.mean_heldout_r2:.3f}"):
        assert text in result.stdout

    result = invoke(tmp_path, "decode", str(embeddings_file), "--sessions", "indy_b", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [s["session"] for s in payload["sessions"]] == ["indy_b"]
    assert payload["sessions"][0]["heldout_r2"] == pytest.approx(
        expected.session("indy_b").heldout_r2, abs=1e-12
    )
    assert payload["sessions"][0]["n_segments"] == {"train": 6, "val": 2, "test": 2}
    assert payload["model"] == "runs/tiny"

    result = runner.invoke(app, ["--json", "decode", str(embeddings_file)])  # global --json
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["sessions"]) == 2


def test_decode_help_has_an_example():
    result = runner.invoke(app, ["decode", "--help"])
    assert result.exit_code == 0
    assert "Example: neuralcli decode emb.h5" in result.output


def test_decode_errors_are_one_line(tmp_path, embeddings_file):
    assert_one_line_error(
        invoke(tmp_path, "decode", str(tmp_path / "nope.h5")), "does not exist", "neuralcli infer"
    )
    text = tmp_path / "notes.h5"
    text.write_text("hello\n")
    assert_one_line_error(invoke(tmp_path, "decode", str(text)), "not a neuralcli embeddings file")
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(embeddings_file.read_bytes()[:3000])
    assert_one_line_error(invoke(tmp_path, "decode", str(truncated)), "is corrupt")
    assert_one_line_error(
        invoke(tmp_path, "decode", str(embeddings_file), "--sessions", "indy_a,zz"),
        "no session 'zz'",
        "indy_a, indy_b",
    )
    assert_one_line_error(
        invoke(tmp_path, "decode", str(embeddings_file), "--target", "position"),
        "unknown decoding target 'position'",
    )
    quiet = write(tmp_path / "quiet.h5", session("indy_a", seed=0, velocity=False))
    assert_one_line_error(invoke(tmp_path, "decode", str(quiet)), "embeddings without velocity")
    train_only = write(tmp_path / "train.h5", session("indy_a", seed=0, split=["train"] * 10))
    assert_one_line_error(
        invoke(tmp_path, "decode", str(train_only)), "session 'indy_a' has no val or test segments"
    )
