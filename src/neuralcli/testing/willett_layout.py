"""Tiny Willett 2023 speech-BCI files in the published layout (data-sources §4), and a fake Dryad.

- `write_competition_mat`: one recording day as MATLAB v5 via scipy.io.savemat: `tx1`…`tx4` and
  `spikePow` as (1, n_sentences) cell arrays of [T, 256] arrays, `sentenceText` as a char matrix
  (one space-padded row per sentence), `blockIdx` as an (n_sentences, 1) double column.
- `write_competition_tar`: `competitionData.tar.gz` holding `competitionData/{train,test,
  competitionHoldOut}/*.mat` (+ a README) from a folder written by `write_competition_tree`.
- `write_malicious_tar`: the same archive with one hostile member added: an absolute path, a
  `../` path, a symbolic link, a hard link or a device node.
- `FakeDryad`: Dryad's API v2 dataset, version-files and download endpoints on a pytest-httpserver
  (Range requests honoured), serving one archive.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

N_ELECTRODES = 256
COUNT_FEATURES = ("tx1", "tx2", "tx3", "tx4")
MALICIOUS_KINDS = ("absolute", "parent", "symlink", "hardlink", "device")
_WORDS = ("hello", "my", "family", "is", "here", "thank", "you", "very", "much", "good")


def fake_sentences(
    rng: np.random.Generator, lengths: Sequence[int], *, rate: float = 0.3
) -> list[np.ndarray]:
    """Poisson counts (T_i, 256) float64 per sentence; channel c counts c % 7 more on average,
    so the first 128 channels are distinguishable from the rest."""
    scale = 1.0 + (np.arange(N_ELECTRODES) % 7)
    return [
        rng.poisson(rate * scale, size=(int(t), N_ELECTRODES)).astype(np.float64) for t in lengths
    ]


def write_competition_mat(
    path: str | Path,
    sentences: Sequence[np.ndarray],
    *,
    texts: Sequence[str] | None = None,
    blocks: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
) -> Path:
    """One day file. `sentences[i]` is tx1 (T_i, 256); tx2..tx4 are thinned copies and
    spikePow is positive noise, so every published variable is present."""
    path = Path(path)
    rng = rng or np.random.default_rng(0)
    n = len(sentences)
    cells = {name: np.empty((1, n), dtype=object) for name in (*COUNT_FEATURES, "spikePow")}
    for i, tx1 in enumerate(sentences):
        tx1 = np.asarray(tx1, dtype=np.float64)
        cells["tx1"][0, i] = tx1
        for k, name in enumerate(COUNT_FEATURES[1:], start=1):
            cells[name][0, i] = np.floor(tx1 / (k + 1))  # higher thresholds, fewer crossings
        cells["spikePow"][0, i] = rng.gamma(2.0, 10.0, size=tx1.shape).astype(np.float32)
    if texts is None:
        texts = [" ".join(rng.choice(_WORDS, size=3)) for _ in range(n)]
    if blocks is None:
        blocks = [1 + i // 3 for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(
        path,
        {
            **cells,
            "sentenceText": np.array(list(texts), dtype=str),
            "blockIdx": np.asarray(blocks, dtype=np.float64).reshape(-1, 1),
        },
        do_compression=True,
    )
    return path


def write_competition_tree(
    root: str | Path, days: Mapping[str, Mapping[str, Sequence[int]]], *, seed: int = 0
) -> dict[str, dict[str, list[np.ndarray]]]:
    """Write `root/competitionData/<folder>/<name>.mat` for `days[folder][name]` = sentence
    lengths (bins); returns the tx1 arrays written, by folder and file name."""
    rng = np.random.default_rng(seed)
    written: dict[str, dict[str, list[np.ndarray]]] = {}
    for folder, files in days.items():
        for name, lengths in files.items():
            sentences = fake_sentences(rng, lengths)
            write_competition_mat(
                Path(root) / "competitionData" / folder / name, sentences, rng=rng
            )
            written.setdefault(folder, {})[name] = sentences
    return written


def write_competition_tar(path: str | Path, tree_root: str | Path) -> Path:
    """`competitionData.tar.gz` of `tree_root/competitionData` with a README beside the days."""
    path, tree_root = Path(path), Path(tree_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree_root / "competitionData", arcname="competitionData")
        _add_bytes(tar, "competitionData/README.txt", b"Willett et al. 2023 competition data\n")
    return path


def write_malicious_tar(path: str | Path, tree_root: str | Path, kind: str) -> Path:
    """The archive of `write_competition_tar` with one hostile member of `kind` appended after
    the genuine files (so a streaming extractor has already written some when it meets it)."""
    if kind not in MALICIOUS_KINDS:
        raise ValueError(f"kind must be one of {MALICIOUS_KINDS}, got {kind!r}")
    path, tree_root = Path(path), Path(tree_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree_root / "competitionData", arcname="competitionData")
        if kind == "absolute":
            _add_bytes(tar, "/tmp/neuralcli-evil.mat", b"evil")
        elif kind == "parent":
            _add_bytes(tar, "competitionData/train/../../../evil.mat", b"evil")
        elif kind in ("symlink", "hardlink"):
            link = tarfile.TarInfo("competitionData/train/evil.mat")
            link.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
        else:
            device = tarfile.TarInfo("competitionData/train/evil.mat")
            device.type = tarfile.CHRTYPE
            device.devmajor, device.devminor = 1, 3
            tar.addfile(device)
    return path


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


# --------------------------------------------------------------------------------------------
# Dryad API v2
# --------------------------------------------------------------------------------------------


class FakeDryad:
    """Dryad's public API v2 for one dataset with one version, on a pytest-httpserver.

    GET /api/v2/datasets/<doi>           -> _links["stash:version"] = /api/v2/versions/<id>
    GET /api/v2/versions/<id>/files      -> two pages: a README, then the archive entry
    GET /api/v2/files/<id>/download      -> the archive bytes, honouring `Range: bytes=N-`;
                                            `cut_first_at` cuts the first body after N bytes
    `digest_type` "md5" / "sha-256" / None sets the listed checksum; `listed_digest` overrides
    the value (to simulate a corrupt copy). Requests are recorded in `ranges` and `paths`.
    """

    VERSION_ID = 271828
    FILE_ID = 31415

    def __init__(
        self,
        httpserver: Any,
        *,
        doi: str,
        name: str,
        body: bytes,
        digest_type: str | None = "md5",
        listed_digest: str | None = None,
        cut_first_at: int | None = None,
    ) -> None:
        self.server = httpserver
        self.base = httpserver.url_for("/").rstrip("/")
        self.body = body
        self.ranges: list[str | None] = []
        self.cut_first_at = cut_first_at
        digest = None
        if digest_type is not None:
            algorithm = digest_type.replace("-", "")
            digest = listed_digest or hashlib.new(algorithm, body).hexdigest()
        version = f"/api/v2/versions/{self.VERSION_ID}"
        entry: dict[str, Any] = {
            "path": name,
            "size": len(body),
            "mimeType": "application/x-gzip",
            "status": "created",
            "_links": {
                "self": {"href": f"/api/v2/files/{self.FILE_ID}"},
                "stash:dataset-version": {"href": version},
                "stash:download": {"href": f"/api/v2/files/{self.FILE_ID}/download"},
            },
        }
        if digest is not None:
            entry.update(digest=digest, digestType=digest_type)
        readme = {
            "path": "README.md",
            "size": 12,
            "digest": hashlib.md5(b"read me\n").hexdigest(),
            "digestType": "md5",
            "_links": {"self": {"href": f"/api/v2/files/{self.FILE_ID + 1}"}},
        }
        quoted = urllib.parse.quote(doi, safe="")
        dataset = {
            "identifier": doi,
            "id": 4242,
            "title": "Data for: A high-performance speech neuroprosthesis",
            "_links": {
                "self": {"href": f"/api/v2/datasets/{quoted}"},
                "stash:versions": {"href": f"/api/v2/datasets/{quoted}/versions"},
                "stash:version": {"href": version},
                "stash:download": {"href": f"/api/v2/datasets/{quoted}/download"},
            },
        }
        page1 = {
            "_links": {
                "self": {"href": f"{version}/files"},
                "next": {"href": f"{version}/files?page=2"},
            },
            "count": 1,
            "total": 2,
            "_embedded": {"stash:files": [readme]},
        }
        page2 = {
            "_links": {"self": {"href": f"{version}/files?page=2"}},
            "count": 1,
            "total": 2,
            "_embedded": {"stash:files": [entry]},
        }
        # The server decodes %3A/%2F before matching, so the DOI is matched in plain text.
        httpserver.expect_request(f"/api/v2/datasets/{doi}").respond_with_json(dataset)
        httpserver.expect_request(f"{version}/files", query_string="page=2").respond_with_json(
            page2
        )
        httpserver.expect_request(f"{version}/files", query_string="").respond_with_json(page1)
        httpserver.expect_request(f"/api/v2/files/{self.FILE_ID}/download").respond_with_handler(
            self._download
        )

    def _download(self, request: Any) -> Any:
        from werkzeug import Response  # test-only dependency (pytest-httpserver)

        header = request.headers.get("Range")
        self.ranges.append(header)
        data = self.body
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        if start >= len(data) and header:
            return Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
        body = data[start:]
        headers = {"Content-Length": str(len(body))}
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if self.cut_first_at is not None:
            cut, self.cut_first_at = self.cut_first_at, None

            def cut_body():
                yield body[:cut]
                raise ConnectionError("connection cut by the fake Dryad")

            return Response(cut_body(), status=status, headers=headers, direct_passthrough=True)
        return Response(body, status=status, headers=headers)
