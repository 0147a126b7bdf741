"""Willett et al. 2023 speech-BCI recordings (participant T12), data-sources §4.

raw/human/competitionData.tar.gz                         the Dryad archive, as downloaded
raw/human/competitionData/{train,test}/<day>.mat         the extracted MATLAB v5 files

Extraction streams the (gzip-compressed) tar once, front to back (never the whole archive in
memory), and refuses the whole archive at the first member that is an absolute path, has a
`..` component, is a symbolic or hard link, a device or a FIFO: the DataError names that member.
Only `competitionData/{train,test}/*.mat` (and `competitionHoldOut/` on request) are written,
through Python's tarfile "data" filter, into a temporary folder that is renamed into place when
complete, so a refused or interrupted extraction leaves nothing behind.

Each `.mat` file holds one recording day: per-sentence cell arrays `tx1`…`tx4` (threshold
crossings at −3.5…−6.5 × RMS) and `spikePow`, each (1, n_sentences) of [T, 256] arrays in 20 ms
bins, `sentenceText` (n_sentences rows of space-padded characters) and `blockIdx`
(n_sentences, 1). `read_competition_mat` returns one feature's first `n_channels` channels.

File order: the original pipeline iterates `os.listdir`, so its sequential val/test split
depends on the file system (data-sources §4, quirk 15). We always sort file names; with the
published `t12.YYYY.MM.DD.mat` names that is chronological order.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PureWindowsPath
from typing import NamedTuple

import numpy as np

from neuralcli.errors import DataError

# scipy.io is imported where a file is read: importing it costs ~15 MB and ~0.3 s, which every
# command that merely imports the data sources would otherwise pay.

ARCHIVE_NAME = "competitionData.tar.gz"
ARCHIVE_ROOT = "competitionData"
SPLIT_FOLDERS = ("train", "test")
HOLDOUT_FOLDER = "competitionHoldOut"
FEATURES = ("tx1", "tx2", "tx3", "tx4", "spikePow")
N_ELECTRODES = 256
BIN_SECONDS = 0.02  # data-sources §4

# Python < 3.10.12 / 3.11.4 has no extraction filters; our own checks below still apply.
_EXTRACT_OPTIONS = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_FILTER_ERRORS: tuple[type[Exception], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)

ExtractProgressFn = Callable[[int, int], None]  # (compressed bytes read, archive size)


class ExtractResult(NamedTuple):
    directory: Path  # <root>/competitionData
    files: dict[str, list[str]]  # folder -> sorted .mat file names
    extracted: bool  # False when a complete extraction was already in place


class CompetitionDay(NamedTuple):
    """One recording day's sentences: one feature, the first n_channels channels."""

    trials: list[np.ndarray]  # per sentence (T_i, n_channels) int64 counts, 20 ms bins
    sentences: list[str]  # spoken sentence ("" when the file has no sentenceText)
    blocks: np.ndarray  # (n_sentences,) int64 block index (-1 when the file has no blockIdx)


def competition_dir(root: Path) -> Path:
    """`<root>/competitionData`, where the extracted files live."""
    return Path(root) / ARCHIVE_ROOT


def competition_files(root: Path, folder: str) -> list[Path]:
    """The `.mat` files of `competitionData/<folder>`, sorted by name (see module doc)."""
    directory = competition_dir(root) / folder
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix.lower() == ".mat" and p.is_file())


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """DataError unless `member` is a plain file or folder with a relative, `..`-free name."""
    name = member.name
    problem = None
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        problem = "has an absolute path"
    elif ".." in name.replace("\\", "/").split("/"):
        problem = "has a '..' path component"
    elif member.issym():
        problem = f"is a symbolic link (to {member.linkname!r})"
    elif member.islnk():
        problem = f"is a hard link (to {member.linkname!r})"
    elif member.isdev():
        problem = "is a device or FIFO"
    elif not (member.isfile() or member.isdir()):
        problem = "is not a plain file or folder"
    if problem is not None:
        raise DataError(
            f"refusing to extract {archive.name}: member {name!r} {problem}; the archive is not "
            f"a genuine Dryad copy, delete {archive} and fetch it again"
        )


def extract_competition_data(
    archive: Path,
    root: Path,
    *,
    include_holdout: bool = False,
    overwrite: bool = False,
    on_progress: ExtractProgressFn | None = None,
) -> ExtractResult:
    """Extract `competitionData/{train,test}/*.mat` (+ the hold-out) of `archive` under `root`.

    Skipped when `root/competitionData` already holds every wanted folder (unless
    `overwrite`). Any unsafe member refuses the whole archive (DataError naming it) and leaves
    `root` as it was. `on_progress(compressed bytes read, archive bytes)` follows the stream.
    """
    archive, root = Path(archive), Path(root)
    folders = SPLIT_FOLDERS + ((HOLDOUT_FOLDER,) if include_holdout else ())
    final = competition_dir(root)
    if not overwrite and all(competition_files(root, f) for f in folders):
        return ExtractResult(final, _listing(root, folders), extracted=False)
    if not archive.is_file():
        raise DataError(f"{archive} does not exist; run `neuralcli data fetch human` first")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        _extract_stream(archive, staging, folders, on_progress)
        missing = [f for f in SPLIT_FOLDERS if not competition_files(staging, f)]
        if missing:
            raise DataError(
                f"{archive.name} holds no {ARCHIVE_ROOT}/{missing[0]}/*.mat; it is not the "
                f"Willett 2023 competition archive, delete {archive} and fetch it again"
            )
        if final.exists():  # an older, partial extraction: replace it whole
            shutil.move(str(final), str(staging / "previous"))
        competition_dir(staging).rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExtractResult(final, _listing(root, folders), extracted=True)


def _extract_stream(
    archive: Path,
    staging: Path,
    folders: Sequence[str],
    on_progress: ExtractProgressFn | None,
) -> None:
    total = archive.stat().st_size
    try:
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as tar:
            for member in tar:
                check_member(member, archive)
                if member.isfile() and _wanted(member.name, folders):
                    tar.extract(member, path=staging, **_EXTRACT_OPTIONS)
                if on_progress is not None:
                    on_progress(raw.tell(), total)
    except _FILTER_ERRORS as exc:
        raise DataError(
            f"refusing to extract {archive.name}: {exc}; delete {archive} and fetch it again"
        ) from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{archive} is damaged or not a .tar.gz ({exc}); delete it and fetch it again"
        ) from None
    except OSError as exc:
        raise DataError(
            f"cannot extract {archive.name} into {staging.parent}: {exc}; free some disk space "
            "or point NEURALCLI_HOME at a larger disk"
        ) from None


def _wanted(name: str, folders: Sequence[str]) -> bool:
    """True for `[./]competitionData/<folder>/<file>.mat` with `folder` in `folders`."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    return (
        len(parts) == 3
        and parts[0] == ARCHIVE_ROOT
        and parts[1] in folders
        and parts[2].lower().endswith(".mat")
    )


def _listing(root: Path, folders: Sequence[str]) -> dict[str, list[str]]:
    return {folder: [p.name for p in competition_files(root, folder)] for folder in folders}


# --------------------------------------------------------------------------- reading


def read_competition_mat(
    path: Path, *, feature: str = "tx1", n_channels: int = 128
) -> CompetitionDay:
    """One day file: `feature`'s first `n_channels` channels of every sentence.

    DataError when the file is not a MATLAB v5 file, lacks `feature`, or holds sentences that
    are not [T, >= n_channels] arrays of non-negative whole counts.
    """
    import scipy.io

    path = Path(path)
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    try:
        mat = scipy.io.loadmat(path, variable_names=[feature, "sentenceText", "blockIdx"])
    except (OSError, ValueError, NotImplementedError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path} cannot be read as a MATLAB v5 file ({reason}); delete the competitionData "
            "folder and run `neuralcli data fetch human` again"
        ) from None
    if feature not in mat:
        raise DataError(f"{path} has no variable {feature!r}; is it a competitionData file?")
    cells = np.asarray(mat[feature])
    items = list(cells.ravel()) if cells.dtype == object else [cells]
    trials = [
        _trial_counts(item, path, feature, index, n_channels) for index, item in enumerate(items)
    ]
    sentences = _sentences(mat.get("sentenceText"), len(trials), path)
    blocks = mat.get("blockIdx")
    if blocks is None:
        block_index = np.full(len(trials), -1, dtype=np.int64)
    else:
        block_index = np.asarray(blocks, dtype=np.float64).ravel()
        if block_index.shape[0] != len(trials):
            raise DataError(
                f"{path}: blockIdx has {block_index.shape[0]} entries for {len(trials)} sentences"
            )
        block_index = block_index.astype(np.int64)
    return CompetitionDay(trials=trials, sentences=sentences, blocks=block_index)


def _trial_counts(
    item: object, path: Path, feature: str, index: int, n_channels: int
) -> np.ndarray:
    array = np.asarray(item)
    if array.ndim != 2 or array.shape[1] < n_channels:
        raise DataError(
            f"{path}: {feature} sentence {index} has shape {array.shape}, expected "
            f"[T, {N_ELECTRODES}] with at least {n_channels} channels"
        )
    counts = array[:, :n_channels]
    if feature != "spikePow":
        as_float = counts.astype(np.float64, copy=False)
        if (
            not np.all(np.isfinite(as_float))
            or np.any(as_float < 0)
            or np.any(as_float != np.floor(as_float))
        ):
            raise DataError(
                f"{path}: {feature} sentence {index} holds values that are not whole "
                "non-negative counts"
            )
    return np.array(counts, dtype=np.int64)  # a copy: the other channels are released


def _sentences(value: object, n_trials: int, path: Path) -> list[str]:
    if value is None:
        return [""] * n_trials
    array = np.asarray(value)
    if array.dtype == object:  # a cell array of char rows
        texts = ["".join(np.asarray(cell).ravel().astype(str).tolist()) for cell in array.ravel()]
    else:  # a char matrix: one space-padded row per sentence
        texts = [str(row) for row in array.ravel()]
    texts = [text.strip() for text in texts]
    if len(texts) != n_trials:
        raise DataError(f"{path}: sentenceText has {len(texts)} rows for {n_trials} sentences")
    return texts
