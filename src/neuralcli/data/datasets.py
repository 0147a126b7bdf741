"""In-memory batch sources for the training loop, and loading one split of a dataset.

The sources implement `neuralcli.training.objective.BatchSource`: the whole array stays in
its compact stored dtype and only the requested batch is gathered (and converted to float32).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from neuralcli.data.lorenz_dataset import REMEDY as LORENZ_REMEDY
from neuralcli.data.lorenz_dataset import lorenz_dir
from neuralcli.data.registry import get_dataset, parse_dataset_ref, resolve_variant
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.store import SPLITS, open_session, read_settings, session_files
from neuralcli.errors import DataError


class SpikeTensorSource:
    """Spike counts (n, T, N) of an integer dtype; batches come out as float32 (B, T, N)."""

    def __init__(self, spikes: np.ndarray | torch.Tensor) -> None:
        tensor = _as_tensor(spikes)  # (n, T, N)
        if tensor.ndim != 3:
            raise ValueError(
                f"spikes must be (trials, time, neurons), got shape {tuple(spikes.shape)}"
            )
        if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            raise ValueError(f"spikes must hold integer counts, got dtype {tensor.dtype}")
        self.spikes = tensor

    def __len__(self) -> int:
        return self.spikes.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, T, N)."""
        return tuple(self.spikes.shape)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """Counts at `indices` (int64, CPU) as float32 (B, T, N)."""
        return self.spikes.index_select(0, torch.as_tensor(indices, dtype=torch.int64)).float()


class LatentTensorSource:
    """Float32 latents (n, T, d); batches are float32 (B, T, d)."""

    def __init__(self, latents: np.ndarray | torch.Tensor) -> None:
        tensor = _as_tensor(latents)  # (n, T, d)
        if tensor.ndim != 3:
            raise ValueError(
                f"latents must be (trials, time, channels), got shape {tuple(latents.shape)}"
            )
        if tensor.dtype != torch.float32:
            raise ValueError(f"latents must be float32, got dtype {tensor.dtype}")
        self.latents = tensor

    def __len__(self) -> int:
        return self.latents.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, T, d)."""
        return tuple(self.latents.shape)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """Latents at `indices` (int64, CPU): float32 (B, T, d), a copy."""
        return self.latents.index_select(0, torch.as_tensor(indices, dtype=torch.int64))


def load_split(
    home: str | os.PathLike,
    source: str | LorenzSettings,
    split: str | None = None,
    *,
    array: str = "spikes",
) -> np.ndarray:
    """Trials of one split, in trial order: (n_split, T, N) in the stored dtype.

    `source` is a dataset reference ("lorenz", "lorenz:test") resolved to its default or only
    processed variant, or LorenzSettings naming a Lorenz variant exactly. The split comes from
    the reference or from `split`; they must agree when both are given.
    """
    if isinstance(source, LorenzSettings):
        directory = lorenz_dir(home, source)
        if not (directory / "settings.yaml").is_file():
            raise DataError(
                f"Lorenz data with these settings ({directory.name}) is not prepared under "
                f"{home}; run `neuralcli data fetch lorenz` first"
            )
        read_settings(directory, remedy=LORENZ_REMEDY)
        files, remedy = session_files(directory), LORENZ_REMEDY
    else:
        dataset, ref_split = parse_dataset_ref(source)
        if ref_split is not None and split is not None and ref_split != split:
            raise DataError(f"{source!r} names split {ref_split!r} but {split!r} was asked for")
        split = split or ref_split
        files = resolve_variant(home, dataset).files
        remedy = get_dataset(dataset).remedy
    if split is None:
        raise DataError(f"name a split, e.g. lorenz:test; valid splits: {', '.join(SPLITS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    if not files:
        raise DataError(f"no session files found for {source!r} under {home}; {remedy}")
    parts = []
    for path in files:
        with open_session(path, remedy=remedy) as reader:
            rows = np.flatnonzero(reader.segments["split"] == split)
            parts.append(reader.read(array, rows))
    if len({part.shape[1:] for part in parts}) > 1:
        raise DataError(f"{array!r} differs in shape across the session files of {source!r}")
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        # torch.from_numpy warns on read-only memory; a copy is the safe way round it.
        array = array.copy()
    return torch.from_numpy(array)
