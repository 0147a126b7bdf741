"""Per-session OLS decoding of velocity from an embeddings file (distillation §9)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score

from neuralcli.data.embeddings import EmbeddingWriter, SessionEmbeddings
from neuralcli.errors import DataError
from neuralcli.pipelines.decode import decode_embeddings

LENGTH = 25
DIM = 4
SPLIT_CYCLE = ["train"] * 8 + ["val", "test"]  # 80 / 10 / 10 like data-sources §9


def linear_session(
    name: str, *, n: int = 40, noise: float = 0.5, seed: int = 0, split=None
) -> SessionEmbeddings:
    """Velocity = embeddings @ W + b + noise with unit-variance signal per output.

    The population R² is then 1 / (1 + noise²) for both outputs.
    """
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, LENGTH, DIM))  # (n, T, d)
    weights = rng.normal(size=(DIM, 2))
    weights /= np.linalg.norm(weights, axis=0)  # unit signal variance per output
    velocity = (
        embeddings @ weights + np.array([0.3, -1.0]) + noise * rng.normal(size=(n, LENGTH, 2))
    )
    if split is None:
        split = [SPLIT_CYCLE[i % len(SPLIT_CYCLE)] for i in range(n)]
    return SessionEmbeddings(
        session=name,
        embeddings=embeddings.astype(np.float32),
        velocity=velocity.astype(np.float32),
        segment_id=np.arange(n),
        split=np.array(split),
        start_time=None,
        attrs={},
    )


def write(path, *sessions: SessionEmbeddings, dtype: str = "float32"):
    with EmbeddingWriter(
        path, attrs={"model": "runs/m", "model_kind": "lfp"}, embedding_dtype=dtype
    ) as w:
        for session in sessions:
            w.add_session(session)
    return path


def sklearn_scores(session: SessionEmbeddings) -> tuple[float, float]:
    n = session.embeddings.shape[0]
    x = session.embeddings.reshape(n * LENGTH, DIM).astype(np.float64)
    y = session.velocity.reshape(n * LENGTH, 2).astype(np.float64)
    labels = np.repeat(session.split, LENGTH)
    train, heldout = labels == "train", np.isin(labels, ["val", "test"])
    model = LinearRegression().fit(x[train], y[train])
    return (
        r2_score(y[train], model.predict(x[train])),
        r2_score(y[heldout], model.predict(x[heldout])),
    )


def test_r2_matches_sklearn_and_the_noise_level(tmp_path):
    sessions = [linear_session("a", noise=0.5, seed=1), linear_session("b", noise=1.0, seed=2)]
    report = decode_embeddings(write(tmp_path / "emb.h5", *sessions))
    assert [s.session for s in report.sessions] == ["a", "b"]
    assert report.target == "velocity"
    assert report.attrs["model"] == "runs/m"
    for decoded, session, noise in zip(report.sessions, sessions, (0.5, 1.0), strict=True):
        train_r2, heldout_r2 = sklearn_scores(session)
        assert decoded.train_r2 == pytest.approx(train_r2, abs=1e-6)
        assert decoded.heldout_r2 == pytest.approx(heldout_r2, abs=1e-6)
        assert decoded.heldout_r2 == pytest.approx(1 / (1 + noise**2), abs=0.06)
        assert decoded.n_segments == {"train": 32, "val": 4, "test": 4}
        assert decoded.n_train_rows == 32 * LENGTH
        assert decoded.n_heldout_rows == 8 * LENGTH
    assert report.mean_heldout_r2 == pytest.approx(np.mean([s.heldout_r2 for s in report.sessions]))
    payload = report.to_dict()
    assert payload["sessions"][1]["session"] == "b"
    assert payload["model_kind"] == "lfp"


def test_session_selection_and_float16(tmp_path):
    sessions = [linear_session(name, seed=i) for i, name in enumerate("abc")]
    path32 = write(tmp_path / "emb32.h5", *sessions)
    path16 = write(tmp_path / "emb16.h5", *sessions, dtype="float16")
    chosen = decode_embeddings(path32, sessions=["c", "a"])
    assert [s.session for s in chosen.sessions] == ["c", "a"]
    assert chosen.session("c").heldout_r2 == decode_embeddings(path32).session("c").heldout_r2
    half = decode_embeddings(path16, sessions=["c"])
    assert half.sessions[0].heldout_r2 == pytest.approx(chosen.sessions[0].heldout_r2, abs=1e-3)


def test_decoding_errors_name_the_file_the_session_and_the_remedy(tmp_path):
    path = write(tmp_path / "emb.h5", linear_session("a"))
    with pytest.raises(DataError, match="unknown decoding target 'position'.*velocity"):
        decode_embeddings(path, target="position")
    with pytest.raises(DataError, match=r"no session 'b' \(it has: a\)"):
        decode_embeddings(path, sessions=["b"])

    quiet = write(tmp_path / "quiet.h5", linear_session("a")._replace(velocity=None))
    with pytest.raises(DataError, match=r"embeddings without velocity \(sessions: a\)"):
        decode_embeddings(quiet)

    only_train = write(tmp_path / "train.h5", linear_session("a", n=4, split=["train"] * 4))
    with pytest.raises(DataError, match="session 'a' has no val or test segments.*every split"):
        decode_embeddings(only_train)
    no_train = write(tmp_path / "val.h5", linear_session("a", n=4, split=["val", "test"] * 2))
    with pytest.raises(DataError, match="session 'a' has no train segments"):
        decode_embeddings(no_train)

    broken = linear_session("a")
    broken.embeddings[3, 2, 1] = np.inf
    with pytest.raises(DataError, match="session 'a' has 1 non-finite"):
        decode_embeddings(write(tmp_path / "inf.h5", broken))
