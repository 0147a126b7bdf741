"""The embeddings file: per-time-step model embeddings of every segment, one group per session.

Written by `neuralcli infer`, read by `neuralcli decode` (distillation §9 step 1: encode every 5 s
segment of a session, one vector per 10 ms step).

Layout (HDF5):

    /                                  attrs: format "neuralcli-embeddings", format_version 1,
                                       bin_seconds, model (run dir), model_kind, dataset,
                                       settings_hash, created_with (neuralcli version)
    /sessions/<session>/embeddings     (n_segments, T, d) float32, or float16 when asked
    /sessions/<session>/velocity       (n_segments, T, 2) float32; absent without velocity
    /sessions/<session>/segment_id     (n_segments,) int64
    /sessions/<session>/split          (n_segments,) str: "train" / "val" / "test"
    /sessions/<session>/start_time     (n_segments,) float64, optional (s)
    /sessions/<session>                attrs: session, source_session (the data session),
                                       as_session (the model's vocabulary session, if any)

Sessions keep the order they were written in. Datasets are stored contiguous and uncompressed:
float embeddings gain little from gzip (see data/store.py) and contiguous rows read fastest.
The writer fills a temporary file that is renamed into place only when it closes cleanly, so a
crash or an exception leaves no file at all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from neuralcli import __version__
from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_path

FORMAT_NAME = "neuralcli-embeddings"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
EMBEDDING_DTYPES = ("float32", "float16")
SESSION_ATTRS = ("session", "source_session", "as_session")
REMEDY = "write it again with `neuralcli infer`"

_SESSIONS = "sessions"


class SessionEmbeddings(NamedTuple):
    """One session's embeddings with the per-segment columns that decoding needs."""

    session: str
    embeddings: np.ndarray  # (n_segments, T, d) float32 or float16
    velocity: np.ndarray | None  # (n_segments, T, 2) float32; None without velocity
    segment_id: np.ndarray  # (n_segments,) int64
    split: np.ndarray  # (n_segments,) str: train / val / test
    start_time: np.ndarray | None  # (n_segments,) float64 seconds, or None
    attrs: dict[str, Any]  # session, source_session, as_session (None when not given)


class EmbeddingsFile(NamedTuple):
    """A whole embeddings file in memory."""

    path: Path
    attrs: dict[str, Any]  # root attrs, format and format_version included
    sessions: list[SessionEmbeddings]


class SessionWriter:
    """Fills one session group in order, a chunk of segments at a time (from `open_session`)."""

    def __init__(self, group: h5py.Group, *, n_segments: int, has_velocity: bool) -> None:
        self.session = str(group.attrs["session"])
        self.n_segments = n_segments
        self.written = 0
        self._group = group
        self._has_velocity = has_velocity
        self._has_start_time = "start_time" in group

    @property
    def complete(self) -> bool:
        return self.written == self.n_segments

    def write(
        self,
        embeddings: np.ndarray,
        *,
        segment_id: np.ndarray | Sequence[int],
        split: np.ndarray | Sequence[str],
        velocity: np.ndarray | None = None,
        start_time: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        """Append the next b segments: embeddings (b, T, d), velocity (b, T, 2), columns (b,)."""
        embeddings = np.asarray(embeddings)
        b = embeddings.shape[0] if embeddings.ndim == 3 else -1
        expected = self._group["embeddings"].shape[1:]
        if embeddings.ndim != 3 or embeddings.shape[1:] != expected:
            raise ValueError(
                f"session {self.session!r}: embeddings must have shape (b, {expected[0]}, "
                f"{expected[1]}), got {embeddings.shape}"
            )
        if self.written + b > self.n_segments:
            raise ValueError(
                f"session {self.session!r}: writing {b} segments after {self.written} would "
                f"exceed the {self.n_segments} opened"
            )
        segment_id = _column(segment_id, b, "segment_id", self.session)
        split = _column(split, b, "split", self.session).astype(str)
        bad = sorted(set(split.tolist()) - set(SPLITS))
        if bad:
            raise ValueError(f"session {self.session!r}: split labels must be in {SPLITS}: {bad}")
        if (velocity is None) == self._has_velocity:
            state = "was opened with" if self._has_velocity else "was opened without"
            raise ValueError(f"session {self.session!r} {state} velocity")
        if (start_time is None) == self._has_start_time:
            state = "was opened with" if self._has_start_time else "was opened without"
            raise ValueError(f"session {self.session!r} {state} start_time")
        if velocity is not None:
            velocity = np.asarray(velocity)
            if velocity.shape != (b, expected[0], 2):
                raise ValueError(
                    f"session {self.session!r}: velocity must have shape ({b}, {expected[0]}, 2),"
                    f" got {velocity.shape}"
                )
        if start_time is not None:
            start_time = _column(start_time, b, "start_time", self.session).astype(np.float64)
        if b == 0:
            return
        rows = slice(self.written, self.written + b)
        self._group["embeddings"][rows] = embeddings
        if velocity is not None:
            self._group["velocity"][rows] = velocity
        self._group["segment_id"][rows] = segment_id.astype(np.int64)
        self._group["split"][rows] = np.array(split.tolist(), dtype=object)
        if start_time is not None:
            self._group["start_time"][rows] = start_time
        self.written += b


class EmbeddingWriter:
    """Write an embeddings file atomically: nothing appears at `path` unless the block succeeds.

        with EmbeddingWriter(path, attrs={"model": run_dir, ...}) as writer:
            writer.add_session(session_embeddings)          # a whole session at once, or
            handle = writer.open_session("b", n_segments=n, length=T, dim=d)
            handle.write(embeddings, segment_id=ids, split=split, velocity=velocity)

    `attrs` become root attributes (str, int, float or bool; None values are left out);
    created_with defaults to this neuralcli version. `embedding_dtype` "float16" halves the file.
    Every opened session must be completely written before the block ends.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        attrs: Mapping[str, Any],
        embedding_dtype: str = "float32",
    ) -> None:
        if embedding_dtype not in EMBEDDING_DTYPES:
            raise ValueError(f"embedding_dtype must be one of {EMBEDDING_DTYPES}")
        self.path = Path(path)
        self.embedding_dtype = np.dtype(embedding_dtype)
        self._attrs = {"created_with": __version__}
        for key, value in attrs.items():
            if key in ("format", "format_version"):
                raise ValueError(f"attr {key!r} is set by the writer")
            if value is None:
                continue
            if isinstance(value, os.PathLike):
                value = os.fspath(value)
            if isinstance(value, np.generic):
                value = value.item()
            if not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"attr {key!r} must be str, int, float or bool, got {value!r}")
            self._attrs[key] = value
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None
        self._handles: list[SessionWriter] = []

    def __enter__(self) -> EmbeddingWriter:
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(h5py.File(tmp, "w"))
            self._file.attrs["format"] = FORMAT_NAME
            self._file.attrs["format_version"] = FORMAT_VERSION
            for key, value in self._attrs.items():
                self._file.attrs[key] = value
            self._file.create_group(_SESSIONS, track_order=True)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        stack, self._stack, self._file = self._stack, None, None
        if stack is None:
            return False
        if exc_type is None:
            unfinished = [
                f"{h.session} ({h.written}/{h.n_segments})" for h in self._handles if not h.complete
            ]
            if unfinished:
                err = ValueError(f"sessions not completely written: {', '.join(unfinished)}")
                stack.__exit__(ValueError, err, None)  # removes the temporary file
                raise err
        return bool(stack.__exit__(exc_type, exc, tb))

    def open_session(
        self,
        session: str,
        *,
        n_segments: int,
        length: int,
        dim: int,
        has_velocity: bool = True,
        has_start_time: bool = False,
        source_session: str | None = None,
        as_session: str | None = None,
    ) -> SessionWriter:
        """Create the group of `session` for n_segments × length steps × dim; fill it by chunks.

        source_session defaults to `session`; as_session is the vocabulary session the model
        used in place of the data's own (distillation §10), None when it used its own.
        """
        if self._file is None:
            raise RuntimeError("EmbeddingWriter must be used as a context manager")
        if not session or "/" in session or session in (".", ".."):
            raise ValueError(f"session name {session!r} cannot be an HDF5 group name")
        sessions = self._file[_SESSIONS]
        if session in sessions:
            raise ValueError(f"session {session!r} was already written")
        if n_segments < 0 or length < 1 or dim < 1:
            raise ValueError(
                f"need n_segments >= 0, length >= 1, dim >= 1; got {n_segments}, {length}, {dim}"
            )
        group = sessions.create_group(session)
        group.attrs["session"] = session
        group.attrs["source_session"] = source_session if source_session is not None else session
        if as_session is not None:
            group.attrs["as_session"] = as_session
        group.create_dataset("embeddings", (n_segments, length, dim), dtype=self.embedding_dtype)
        if has_velocity:
            group.create_dataset("velocity", (n_segments, length, 2), dtype=np.float32)
        group.create_dataset("segment_id", (n_segments,), dtype=np.int64)
        group.create_dataset("split", (n_segments,), dtype=h5py.string_dtype())
        if has_start_time:
            group.create_dataset("start_time", (n_segments,), dtype=np.float64)
        handle = SessionWriter(group, n_segments=n_segments, has_velocity=has_velocity)
        self._handles.append(handle)
        return handle

    def add_session(self, data: SessionEmbeddings) -> None:
        """Write a whole session at once (its attrs may give source_session and as_session)."""
        embeddings = np.asarray(data.embeddings)
        if embeddings.ndim != 3:
            raise ValueError(
                f"session {data.session!r}: embeddings must be (n, T, d), got {embeddings.shape}"
            )
        n, length, dim = embeddings.shape
        handle = self.open_session(
            data.session,
            n_segments=n,
            length=length,
            dim=dim,
            has_velocity=data.velocity is not None,
            has_start_time=data.start_time is not None,
            source_session=data.attrs.get("source_session"),
            as_session=data.attrs.get("as_session"),
        )
        handle.write(
            embeddings,
            segment_id=data.segment_id,
            split=data.split,
            velocity=data.velocity,
            start_time=data.start_time,
        )


class EmbeddingsReader:
    """Lazy access to an embeddings file: metadata on open, one session's arrays per `read`.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist; write it with `neuralcli infer`")
        if not h5py.is_hdf5(self.path):
            raise self._not_embeddings()
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise self._corrupt(err) from None
        try:
            found = _plain_attr(self._file.attrs.get("format"))
            if found != FORMAT_NAME:
                raise self._not_embeddings()
            version = int(self._file.attrs.get("format_version", 0))
            if version > FORMAT_VERSION:
                raise DataError(
                    f"{self.path} was written by a newer neuralcli (format {version}); "
                    f"upgrade neuralcli or {REMEDY}"
                )
            self.attrs: dict[str, Any] = {k: _plain_attr(v) for k, v in self._file.attrs.items()}
            self.sessions: list[str] = list(self._file[_SESSIONS])
        except DataError:
            self._file.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as err:
            self._file.close()
            raise self._corrupt(err) from None

    def has_velocity(self, session: str) -> bool:
        return "velocity" in self._group(session)

    def shape(self, session: str) -> tuple[int, int, int]:
        """(n_segments, T, d) of the session's embeddings, without reading them."""
        shape = self._group(session)["embeddings"].shape
        if len(shape) != 3:
            raise self._corrupt(ValueError(f"session {session!r} embeddings have shape {shape}"))
        return tuple(shape)  # type: ignore[return-value]

    def split(self, session: str) -> np.ndarray:
        """(n_segments,) split labels of the session, without reading its arrays."""
        try:
            return np.array(self._group(session)["split"].asstr()[()], dtype=str)
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise self._corrupt(err, session) from None

    def session_attrs(self, session: str) -> dict[str, Any]:
        group = self._group(session)
        attrs = {key: None for key in SESSION_ATTRS}
        attrs.update({k: _plain_attr(v) for k, v in group.attrs.items()})
        return attrs

    def read(self, session: str) -> SessionEmbeddings:
        """All arrays of one session (DataError if it is unknown or malformed)."""
        group = self._group(session)
        try:
            embeddings = group["embeddings"][()]
            velocity = group["velocity"][()] if "velocity" in group else None
            segment_id = group["segment_id"][()].astype(np.int64)
            split = self.split(session)
            start_time = group["start_time"][()] if "start_time" in group else None
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise self._corrupt(err, session) from None
        n = embeddings.shape[0] if embeddings.ndim == 3 else -1
        problems = []
        if n < 0:
            problems.append(f"embeddings have shape {embeddings.shape}, not (n, T, d)")
        elif velocity is not None and velocity.shape != (n, embeddings.shape[1], 2):
            problems.append(f"velocity {velocity.shape} does not match {embeddings.shape}")
        columns = {"segment_id": segment_id, "split": split, "start_time": start_time}
        for name, column in columns.items():
            if column is not None and column.shape != (n,):
                problems.append(f"{name} has shape {column.shape}, expected ({n},)")
        bad = sorted(set(split.tolist()) - set(SPLITS))
        if bad:
            problems.append(f"unknown split labels {bad}")
        if problems:
            raise self._corrupt(ValueError("; ".join(problems)), session)
        return SessionEmbeddings(
            session=session,
            embeddings=embeddings,
            velocity=velocity,
            segment_id=segment_id,
            split=split,
            start_time=start_time,
            attrs=self.session_attrs(session),
        )

    def iter_sessions(self, sessions: Sequence[str] | None = None) -> Iterator[SessionEmbeddings]:
        """Read the sessions one at a time (all of them, in file order, when None)."""
        for session in self.select(sessions):
            yield self.read(session)

    def select(self, sessions: Sequence[str] | None) -> list[str]:
        """The requested session names, checked against the file; all of them when None."""
        if sessions is None:
            return list(self.sessions)
        chosen = list(dict.fromkeys(sessions))
        for session in chosen:
            self._group(session)
        return chosen

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EmbeddingsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _group(self, session: str) -> h5py.Group:
        if session not in self.sessions:
            known = ", ".join(self.sessions) or "none"
            raise DataError(
                f"{self.path} has no session {session!r} (it has: {known}); "
                "pick one of those or encode that session with `neuralcli infer`"
            )
        try:
            return self._file[_SESSIONS][session]
        except (OSError, KeyError) as err:
            raise self._corrupt(err, session) from None

    def _not_embeddings(self) -> DataError:
        return DataError(
            f"{self.path} is not a neuralcli embeddings file; pass a file written by "
            "`neuralcli infer`"
        )

    def _corrupt(self, err: Exception, session: str | None = None) -> DataError:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        where = f" (session {session!r})" if session is not None else ""
        return DataError(f"{self.path} is corrupt{where}: {reason}; {REMEDY}")


def open_embeddings(path: str | os.PathLike) -> EmbeddingsReader:
    """A lazy `EmbeddingsReader` on `path` (DataError if missing, foreign or corrupt)."""
    return EmbeddingsReader(path)


def read_embeddings(
    path: str | os.PathLike, *, sessions: Sequence[str] | None = None
) -> EmbeddingsFile:
    """Read the file's attrs and the named sessions (all, in file order, when None)."""
    with EmbeddingsReader(path) as reader:
        return EmbeddingsFile(
            path=reader.path,
            attrs=dict(reader.attrs),
            sessions=list(reader.iter_sessions(sessions)),
        )


def _column(values: Any, n: int, name: str, session: str) -> np.ndarray:
    column = np.asarray(values)
    if column.shape != (n,):
        raise ValueError(f"session {session!r}: {name} must have shape ({n},), got {column.shape}")
    return column


def _plain_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
