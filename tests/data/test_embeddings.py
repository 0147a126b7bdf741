"""The embeddings file: round trip, chunked writes, float16, atomicity, lazy reading, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neuralcli import __version__
from neuralcli.data.embeddings import (
    EmbeddingsReader,
    EmbeddingWriter,
    SessionEmbeddings,
    read_embeddings,
)
from neuralcli.errors import DataError

ROOT_ATTRS = {
    "bin_seconds": 0.01,
    "model": "runs/distill-indy",
    "model_kind": "lfp_student",
    "dataset": "makin",
    "settings_hash": "3a4b4c0ffee0",
}


def make_session(
    name: str, *, n: int = 6, length: int = 5, dim: int = 3, seed: int = 0, **attrs
) -> SessionEmbeddings:
    rng = np.random.default_rng(seed)
    return SessionEmbeddings(
        session=name,
        embeddings=rng.normal(size=(n, length, dim)).astype(np.float32),
        velocity=rng.normal(size=(n, length, 2)).astype(np.float32),
        segment_id=np.arange(n, dtype=np.int64) * 2 + 1,
        split=np.array(["train", "val", "test"] * (n // 3) + ["train"] * (n % 3)),
        start_time=np.arange(n, dtype=np.float64) * 5.0,
        attrs=attrs,
    )


def assert_same_session(read: SessionEmbeddings, written: SessionEmbeddings) -> None:
    assert read.session == written.session
    np.testing.assert_array_equal(read.embeddings, written.embeddings)
    np.testing.assert_array_equal(read.velocity, written.velocity)
    np.testing.assert_array_equal(read.segment_id, written.segment_id)
    np.testing.assert_array_equal(read.split, written.split)
    np.testing.assert_array_equal(read.start_time, written.start_time)
    assert read.segment_id.dtype == np.int64
    assert read.start_time.dtype == np.float64


def test_round_trip_keeps_arrays_attrs_and_session_order(tmp_path):
    path = tmp_path / "emb.h5"
    second = make_session("b_20160624_03", seed=1, as_session="a_20160622_01")
    first = make_session("a_20160622_01", seed=2)
    with EmbeddingWriter(path, attrs=ROOT_ATTRS) as writer:
        writer.add_session(second)
        writer.add_session(first)
    loaded = read_embeddings(path)
    assert [s.session for s in loaded.sessions] == ["b_20160624_03", "a_20160622_01"]
    assert_same_session(loaded.sessions[0], second)
    assert_same_session(loaded.sessions[1], first)
    assert loaded.attrs == {
        **ROOT_ATTRS,
        "format": "neuralcli-embeddings",
        "format_version": 1,
        "created_with": __version__,
    }
    assert loaded.sessions[0].attrs == {
        "session": "b_20160624_03",
        "source_session": "b_20160624_03",
        "as_session": "a_20160622_01",
    }
    assert loaded.sessions[1].attrs["as_session"] is None
    only = read_embeddings(path, sessions=["a_20160622_01"])
    assert [s.session for s in only.sessions] == ["a_20160622_01"]


def test_session_without_velocity_or_start_time(tmp_path):
    path = tmp_path / "emb.h5"
    session = make_session("s")._replace(velocity=None, start_time=None)
    with EmbeddingWriter(path, attrs={"model": "runs/x", "dataset": None}) as writer:
        writer.add_session(session)
    loaded = read_embeddings(path)
    assert loaded.sessions[0].velocity is None
    assert loaded.sessions[0].start_time is None
    assert "dataset" not in loaded.attrs  # None attrs are left out
    with EmbeddingsReader(path) as reader:
        assert not reader.has_velocity("s")


def test_chunked_writes_equal_a_whole_write(tmp_path):
    session = make_session("s", n=7, seed=3, source_session="raw_s")
    with EmbeddingWriter(tmp_path / "whole.h5", attrs=ROOT_ATTRS) as writer:
        writer.add_session(session)
    with EmbeddingWriter(tmp_path / "chunks.h5", attrs=ROOT_ATTRS) as writer:
        handle = writer.open_session(
            "s", n_segments=7, length=5, dim=3, has_start_time=True, source_session="raw_s"
        )
        for rows in (slice(0, 3), slice(3, 3), slice(3, 6), slice(6, 7)):
            handle.write(
                session.embeddings[rows],
                segment_id=session.segment_id[rows],
                split=session.split[rows],
                velocity=session.velocity[rows],
                start_time=session.start_time[rows],
            )
        assert handle.complete
    whole = read_embeddings(tmp_path / "whole.h5").sessions[0]
    chunks = read_embeddings(tmp_path / "chunks.h5").sessions[0]
    assert_same_session(chunks, whole)
    assert (
        chunks.attrs
        == whole.attrs
        == {
            "session": "s",
            "source_session": "raw_s",
            "as_session": None,
        }
    )


def test_float16_embeddings(tmp_path):
    path = tmp_path / "emb.h5"
    session = make_session("s")
    with EmbeddingWriter(path, attrs=ROOT_ATTRS, embedding_dtype="float16") as writer:
        writer.add_session(session)
    loaded = read_embeddings(path).sessions[0]
    assert loaded.embeddings.dtype == np.float16
    assert loaded.velocity.dtype == np.float32  # targets stay full precision
    np.testing.assert_allclose(loaded.embeddings, session.embeddings, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="embedding_dtype"):
        EmbeddingWriter(path, attrs=ROOT_ATTRS, embedding_dtype="bfloat16")


def test_an_exception_inside_the_writer_leaves_nothing(tmp_path):
    path = tmp_path / "emb.h5"
    with pytest.raises(RuntimeError, match="boom"), EmbeddingWriter(path, attrs=ROOT_ATTRS) as w:
        w.add_session(make_session("s"))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_unfinished_session_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "emb.h5"
    with EmbeddingWriter(path, attrs=ROOT_ATTRS) as writer:
        writer.add_session(make_session("old"))
    before = path.read_bytes()
    session = make_session("new")
    with pytest.raises(ValueError, match=r"not completely written: new \(2/6\)"):
        with EmbeddingWriter(path, attrs=ROOT_ATTRS) as writer:
            handle = writer.open_session("new", n_segments=6, length=5, dim=3)
            handle.write(
                session.embeddings[:2],
                segment_id=session.segment_id[:2],
                split=session.split[:2],
                velocity=session.velocity[:2],
            )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["emb.h5"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embeddings": np.zeros((6, 5))}, "embeddings must be"),
        ({"velocity": np.zeros((6, 5, 3))}, "velocity must have shape"),
        ({"split": np.array(["train", "dev"] * 3)}, "split labels"),
        ({"segment_id": np.arange(5)}, "segment_id must have shape"),
        ({"session": "a/b"}, "cannot be an HDF5 group name"),
    ],
)
def test_writer_rejects_malformed_sessions(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        with EmbeddingWriter(tmp_path / "emb.h5", attrs=ROOT_ATTRS) as writer:
            writer.add_session(make_session("s")._replace(**change))
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_duplicates_and_mismatched_chunks(tmp_path):
    session = make_session("s")
    with pytest.raises(ValueError, match="already written"):
        with EmbeddingWriter(tmp_path / "emb.h5", attrs=ROOT_ATTRS) as writer:
            writer.add_session(session)
            writer.add_session(session)
    with pytest.raises(ValueError, match="opened without velocity"):
        with EmbeddingWriter(tmp_path / "emb.h5", attrs=ROOT_ATTRS) as writer:
            handle = writer.open_session("s", n_segments=6, length=5, dim=3, has_velocity=False)
            handle.write(
                session.embeddings,
                segment_id=session.segment_id,
                split=session.split,
                velocity=session.velocity,
            )
    with pytest.raises(ValueError, match="exceed the 2 opened"):
        with EmbeddingWriter(tmp_path / "emb.h5", attrs=ROOT_ATTRS) as writer:
            handle = writer.open_session("s", n_segments=2, length=5, dim=3)
            handle.write(
                session.embeddings[:3],
                segment_id=session.segment_id[:3],
                split=session.split[:3],
                velocity=session.velocity[:3],
            )
    with pytest.raises(ValueError, match="set by the writer"):
        EmbeddingWriter(tmp_path / "emb.h5", attrs={"format": "x"})
    assert list(tmp_path.iterdir()) == []


def test_reader_is_lazy_per_session(tmp_path):
    """Metadata needs no array reads; a broken session only fails when it is read."""
    path = tmp_path / "emb.h5"
    with EmbeddingWriter(path, attrs=ROOT_ATTRS) as writer:
        writer.add_session(make_session("good", n=6, dim=3))
        writer.add_session(make_session("broken", n=3, dim=4))
    with h5py.File(path, "a") as f:
        del f["sessions/broken/segment_id"]
        f["sessions/broken/segment_id"] = np.arange(5)
    with EmbeddingsReader(path) as reader:
        assert reader.sessions == ["good", "broken"]
        assert reader.shape("broken") == (3, 5, 4)
        assert reader.has_velocity("good")
        assert reader.split("broken").tolist() == ["train", "val", "test"]
        iterator = reader.iter_sessions()
        assert next(iterator).session == "good"
        with pytest.raises(DataError, match=r"corrupt \(session 'broken'\): segment_id has shape"):
            next(iterator)
    assert read_embeddings(path, sessions=["good"]).sessions[0].embeddings.shape == (6, 5, 3)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_reader_errors(tmp_path):
    path = tmp_path / "emb.h5"
    with EmbeddingWriter(path, attrs=ROOT_ATTRS) as writer:
        writer.add_session(make_session("a"))
        writer.add_session(make_session("b"))

    with pytest.raises(DataError) as err:
        read_embeddings(path, sessions=["a", "zz"])
    assert "has no session 'zz' (it has: a, b)" in _one_line(err)

    with pytest.raises(DataError, match="does not exist"):
        read_embeddings(tmp_path / "missing.h5")

    text = tmp_path / "notes.h5"
    text.write_text("not hdf5 at all\n")
    with pytest.raises(DataError) as err:
        read_embeddings(text)
    assert "is not a neuralcli embeddings file" in _one_line(err)

    other = tmp_path / "session.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "neuralcli-session"
    with pytest.raises(DataError, match="is not a neuralcli embeddings file"):
        read_embeddings(other)

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        read_embeddings(truncated)
    assert "is corrupt" in _one_line(err) and "neuralcli infer" in str(err.value)

    newer = tmp_path / "newer.h5"
    newer.write_bytes(path.read_bytes())
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(DataError, match="newer neuralcli"):
        read_embeddings(newer)

    no_group = tmp_path / "no_group.h5"
    with h5py.File(no_group, "w") as f:
        f.attrs["format"] = "neuralcli-embeddings"
        f.attrs["format_version"] = 1
    with pytest.raises(DataError, match="is corrupt"):
        read_embeddings(no_group)
