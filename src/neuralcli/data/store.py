"""The on-disk processed format, shared by every dataset.

    <home>/processed/<dataset>/<settings-hash>/settings.yaml   every parameter that made the files
    <home>/processed/<dataset>/<settings-hash>/<session>.h5    one HDF5 file per session

The hash is the first 12 hex digits of the SHA-256 of settings.yaml's exact text, so a folder
name changes whenever any processing parameter does. settings.yaml is written last: a folder
without it is an unfinished write and is ignored.

Session file layout (HDF5):

    /                      attrs: format, format_version, attrs_json (JSON of the caller's attrs)
    /arrays/<name>         any numeric array; attr "units" when given
    /segments/<column>     equal-length columns, one row per trial/segment; "split" is required
    /channel_names         (n_channels,) strings, when given

Integer arrays of 64 KiB and more are gzip level 1 compressed; floats are stored raw. Measured
on Lorenz (128 trials x 256 bins x 128 neurons): uint8 spikes 4.2 MB -> 0.67 MB with gzip 1
(write 0.06 s, read 0.02 s) vs 1.06 MB with lzf (0.05 s, 0.04 s); float32 rates gain only 18%
from gzip 1 at 30x the write time (0.85 s vs 0.03 s).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np
import yaml

from neuralcli.errors import DataError
from neuralcli.runtime.files import atomic_path, atomic_write_text

FORMAT_NAME = "neuralcli-session"
FORMAT_VERSION = 1
SETTINGS_FILE = "settings.yaml"
SPLITS = ("train", "val", "test")
HASH_LENGTH = 12

_SETTINGS_HEADER = (
    "# Every processing parameter that produced the files in this folder.\n"
    "# The folder name is the first 12 hex digits of this file's SHA-256: do not edit it.\n"
)
_COMPRESS_MIN_BYTES = 64 * 1024
_CHUNK_BYTES = 256 * 1024  # about one chunk per few trials: cheap random batch reads


class SessionData(NamedTuple):
    """A whole session file in memory."""

    arrays: dict[str, np.ndarray]
    segments: dict[str, np.ndarray]  # equal-length columns; "split" holds train/val/test
    attrs: dict[str, Any]
    channel_names: list[str] | None
    units: dict[str, str]


class ProcessedVariant(NamedTuple):
    """One processed folder of a dataset."""

    hash: str
    settings: dict[str, Any]
    files: list[Path]  # session files (*.h5), sorted by name


def canonical_settings_text(settings: Mapping[str, Any]) -> str:
    """The exact settings.yaml text for `settings`: sorted keys, plain YAML types."""
    body = yaml.safe_dump(_plain(dict(settings), "settings"), sort_keys=True, allow_unicode=True)
    return _SETTINGS_HEADER + body


def settings_hash(settings: Mapping[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the canonical settings.yaml text."""
    return _text_hash(canonical_settings_text(settings))


def processed_dir(home: str | os.PathLike, dataset: str, settings: Mapping[str, Any]) -> Path:
    """<home>/processed/<dataset>/<settings-hash> (not created here)."""
    return Path(home) / "processed" / dataset / settings_hash(settings)


def write_settings(directory: str | os.PathLike, settings: Mapping[str, Any]) -> Path:
    """Write <directory>/settings.yaml atomically; returns its path."""
    path = Path(directory) / SETTINGS_FILE
    atomic_write_text(path, canonical_settings_text(settings))
    return path


def read_settings(directory: str | os.PathLike, *, remedy: str | None = None) -> dict[str, Any]:
    """Parse <directory>/settings.yaml and check that it still hashes to the folder's name."""
    directory = Path(directory)
    path = directory / SETTINGS_FILE
    remedy = remedy or f"delete {directory} and prepare the dataset again"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; {remedy}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); {remedy}") from None
    try:
        settings = yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = str(err).splitlines()[0]
        raise DataError(f"{path} is not valid YAML ({problem}); {remedy}") from None
    if not isinstance(settings, dict):
        raise DataError(f"{path} does not hold a mapping of settings; {remedy}")
    if _text_hash(text) != directory.name:
        raise DataError(
            f"{path} does not match its folder name {directory.name!r} (was it edited?); {remedy}"
        )
    return settings


def write_session(
    path: str | os.PathLike,
    *,
    arrays: Mapping[str, np.ndarray],
    segments: Mapping[str, np.ndarray],
    attrs: Mapping[str, Any] | None = None,
    channel_names: Sequence[str] | None = None,
    units: Mapping[str, str] | None = None,
) -> Path:
    """Write one session file atomically (a crash leaves no partial file); returns its path.

    `segments` is a table of equal-length 1-d columns, one row per trial or segment, with a
    "split" column of "train"/"val"/"test". `attrs` must be JSON-serialisable. `units` maps an
    array or segment column name to its unit string.
    """
    path = Path(path)
    segments = {name: np.asarray(column) for name, column in segments.items()}
    _check_segments(segments, path)
    units = dict(units or {})
    unknown = sorted(set(units) - set(arrays) - set(segments))
    if unknown:
        raise ValueError(f"units given for {unknown}, which are neither arrays nor segment columns")
    try:
        attrs_json = json.dumps(_plain(dict(attrs or {}), "attrs"), sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"attrs must be JSON-serialisable: {err}") from None
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["attrs_json"] = attrs_json
        group = f.create_group("arrays")
        for name, array in arrays.items():
            _write_dataset(group, name, np.asarray(array), units.get(name))
        group = f.create_group("segments")
        for name, column in segments.items():
            _write_dataset(group, name, column, units.get(name))
        if channel_names is not None:
            names = np.array([str(n) for n in channel_names], dtype=object)
            f.create_dataset("channel_names", data=names, dtype=h5py.string_dtype())
    return path


class SessionReader:
    """Lazy access to one session file: small tables on open, arrays read on demand.

    Use as a context manager, or call `close()`.
    """

    def __init__(self, path: str | os.PathLike, *, remedy: str | None = None) -> None:
        self.path = Path(path)
        self._remedy = remedy or _default_remedy(self.path)
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist; {self._remedy}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise self._corrupt(err) from None
        try:
            self._check_format()
            self.attrs: dict[str, Any] = json.loads(self._file.attrs["attrs_json"])
            self.segments: dict[str, np.ndarray] = {
                name: _read_all(ds) for name, ds in self._file["segments"].items()
            }
            self.channel_names: list[str] | None = (
                [str(n) for n in self._file["channel_names"].asstr()[()]]
                if "channel_names" in self._file
                else None
            )
            self.units: dict[str, str] = {}
            for group in ("arrays", "segments"):
                for name, ds in self._file[group].items():
                    if "units" in ds.attrs:
                        self.units[name] = str(ds.attrs["units"])
            self.array_names: list[str] = list(self._file["arrays"])
        except DataError:
            self._file.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as err:
            self._file.close()
            raise self._corrupt(err) from None

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._dataset(name).shape)

    def dtype(self, name: str) -> np.dtype:
        return self._dataset(name).dtype

    def read(
        self, name: str, index: slice | np.ndarray | Sequence[int] | None = None
    ) -> np.ndarray:
        """Array `name`, or its rows at `index` (a slice, or integer rows in any order)."""
        dataset = self._dataset(name)
        try:
            if h5py.check_string_dtype(dataset.dtype) is not None:
                strings = _read_all(dataset)
                return strings if index is None else strings[index]
            if index is None:
                return dataset[()]
            if isinstance(index, slice):
                return dataset[index]
            return _read_rows(dataset, np.asarray(index, dtype=np.int64))
        except OSError as err:
            raise self._corrupt(err) from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dataset(self, name: str) -> h5py.Dataset:
        if name not in self.array_names:
            raise DataError(
                f"{self.path} has no array {name!r} (it has: {', '.join(self.array_names)}); "
                f"{self._remedy}"
            )
        return self._file["arrays"][name]

    def _check_format(self) -> None:
        found = self._file.attrs.get("format")
        if isinstance(found, bytes):
            found = found.decode()
        if found != FORMAT_NAME:
            raise DataError(f"{self.path} is not a neuralcli session file; {self._remedy}")
        version = int(self._file.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise DataError(
                f"{self.path} was written by a newer neuralcli (format {version}); "
                "upgrade neuralcli or prepare the dataset again with this version"
            )

    def _corrupt(self, err: Exception) -> DataError:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        return DataError(f"{self.path} is corrupt ({reason}); {self._remedy}")


def open_session(path: str | os.PathLike, *, remedy: str | None = None) -> SessionReader:
    """A lazy `SessionReader` on `path` (DataError if missing or corrupt)."""
    return SessionReader(path, remedy=remedy)


def holds_session(
    directory: Path, session_file: Path, arrays: Sequence[str], *, remedy: str
) -> bool:
    """True when `directory` has a readable settings.yaml and `session_file` opens with every
    array in `arrays`: a processed variant that was written to the end."""
    try:
        read_settings(directory, remedy=remedy)
        with open_session(session_file, remedy=remedy) as reader:
            return all(name in reader.array_names for name in arrays)
    except DataError:
        return False


def read_session(
    path: str | os.PathLike,
    arrays: Sequence[str] | None = None,
    *,
    remedy: str | None = None,
) -> SessionData:
    """Read a session file into memory: all arrays, or only those named in `arrays`."""
    with SessionReader(path, remedy=remedy) as reader:
        names = reader.array_names if arrays is None else list(arrays)
        loaded = {name: reader.read(name) for name in names}
        return SessionData(
            arrays=loaded,
            segments=reader.segments,
            attrs=reader.attrs,
            channel_names=reader.channel_names,
            units=reader.units,
        )


def find_processed(
    home: str | os.PathLike, dataset: str, *, remedy: str | None = None
) -> list[ProcessedVariant]:
    """Every finished processed folder of `dataset` under `home`, sorted by hash.

    Folders without settings.yaml (an interrupted write) are skipped; a settings.yaml that is
    unreadable or no longer matches its folder name raises DataError.
    """
    variants = []
    for directory in processed_folders(home, dataset):
        settings = read_settings(directory, remedy=remedy)
        variants.append(
            ProcessedVariant(hash=directory.name, settings=settings, files=session_files(directory))
        )
    return variants


def processed_folders(home: str | os.PathLike, dataset: str) -> list[Path]:
    """Folders under <home>/processed/<dataset> that hold a settings.yaml, sorted by name."""
    base = Path(home) / "processed" / dataset
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (p / SETTINGS_FILE).is_file())


def session_files(directory: str | os.PathLike) -> list[Path]:
    """The session files (*.h5) in a processed folder, sorted; unfinished temporaries excluded."""
    return sorted(p for p in Path(directory).glob("*.h5") if not p.name.startswith("."))


def directory_size(directory: str | os.PathLike) -> int:
    """Bytes of all files under `directory` (0 if it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def _default_remedy(path: Path) -> str:
    # processed/<dataset>/<hash>/<file>: name the dataset so the user knows what to redo.
    if path.parent.parent.parent.name == "processed":
        return f"delete it and run `neuralcli data fetch {path.parent.parent.name}` again"
    return "delete it and write it again"


def _plain(value: Any, where: str) -> Any:
    """Plain YAML/JSON values: tuples to lists, numpy scalars and paths to python."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, where) for item in value]
    if isinstance(value, np.ndarray):
        return [_plain(item, where) for item in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored as a setting")


def _check_segments(segments: dict[str, np.ndarray], path: Path) -> None:
    if "split" not in segments:
        raise ValueError(f"{path}: the segment table needs a 'split' column")
    lengths = {name: len(column) for name, column in segments.items()}
    if any(np.ndim(column) != 1 for column in segments.values()):
        raise ValueError(f"{path}: segment columns must be 1-d")
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{path}: segment columns differ in length: {lengths}")
    bad = sorted(set(np.asarray(segments["split"]).astype(str).tolist()) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: split labels must be one of {SPLITS}, got {bad}")


def _write_dataset(group: h5py.Group, name: str, array: np.ndarray, units: str | None) -> None:
    if array.dtype.kind in "OUS":
        data = np.array([str(v) for v in array.ravel()], dtype=object).reshape(array.shape)
        dataset = group.create_dataset(name, data=data, dtype=h5py.string_dtype())
    elif array.dtype.kind in "biuf" and array.ndim > 0 and array.nbytes >= _COMPRESS_MIN_BYTES:
        row_bytes = max(1, array[0].nbytes if array.shape[0] else 1)
        rows = max(1, min(array.shape[0], _CHUNK_BYTES // row_bytes))
        chunks = (rows, *array.shape[1:])
        if array.dtype.kind in "biu":
            dataset = group.create_dataset(
                name,
                data=array,
                chunks=chunks,
                compression="gzip",
                compression_opts=1,
                shuffle=array.dtype.itemsize > 1,
            )
        else:
            dataset = group.create_dataset(name, data=array, chunks=chunks)
    elif array.dtype.kind in "biuf":
        dataset = group.create_dataset(name, data=array)
    else:
        raise ValueError(f"array {name!r} has dtype {array.dtype}, which cannot be stored")
    if units is not None:
        dataset.attrs["units"] = units


def _read_all(dataset: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(dataset.dtype) is not None:
        return np.array(dataset.asstr()[()], dtype=str)
    return dataset[()]


def _read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """Rows in the requested order. h5py needs increasing unique indices, so sort and undo."""
    if rows.size == 0:
        return np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
    n = dataset.shape[0]
    if rows.min() < -n or rows.max() >= n:
        raise IndexError(f"row index out of range for {n} rows")
    rows = np.where(rows < 0, rows + n, rows)
    unique, inverse = np.unique(rows, return_inverse=True)
    low, high = int(unique[0]), int(unique[-1]) + 1
    if len(unique) * 8 >= high - low:
        # Dense selection: one contiguous read beats per-row hyperslabs.
        block = dataset[low:high]
        picked = block[unique - low]
    else:
        picked = dataset[unique]
    return picked[inverse]
