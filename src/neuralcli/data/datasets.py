"""In-memory batch sources for the training loop, and loading one split of a dataset.

The sources implement `neuralcli.training.objective.BatchSource`: the whole array stays in
its compact stored dtype and only the requested batch is gathered (and converted to float32).
"""

from __future__ import annotations

import os
from typing import NamedTuple

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


class ConditionedLatents(NamedTuple):
    """A batch of latents with the conditions of their trials (LDNS §9); unused ones are None."""

    latents: torch.Tensor  # (B, T, d) float32 standardised latents
    angle: torch.Tensor | None = None  # (B,) float32 reach angle θ, radians
    velocity: torch.Tensor | None = None  # (B, T, 2) float32 velocity, m/s
    mask: torch.Tensor | None = None  # (B, T) float32, 1 = real bin, 0 = padding

    def conditions(self) -> dict[str, torch.Tensor]:
        """The conditions that are present, as keyword arguments of the denoiser."""
        present = {"angle": self.angle, "velocity": self.velocity, "mask": self.mask}
        return {name: value for name, value in present.items() if value is not None}


class ConditionedLatentSource:
    """Float32 latents (n, T, d) with per-trial conditions; batches are `ConditionedLatents`.

    angle (n,) radians, velocity (n, T, 2) m/s, mask (n, T) 0/1 (any real or integer dtype;
    stored as float32). Give the ones the denoiser is conditioned on.
    """

    def __init__(
        self,
        latents: np.ndarray | torch.Tensor,
        *,
        angle: np.ndarray | torch.Tensor | None = None,
        velocity: np.ndarray | torch.Tensor | None = None,
        mask: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        self.latents = LatentTensorSource(latents).latents  # (n, T, d)
        n, length = self.latents.shape[:2]
        self.angle = _condition(angle, "angle", (n,))  # (n,)
        self.velocity = _condition(velocity, "velocity", (n, length, 2))  # (n, T, 2)
        self.mask = _condition(mask, "mask", (n, length))  # (n, T)

    def __len__(self) -> int:
        return self.latents.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, T, d) of the latents."""
        return tuple(self.latents.shape)

    def batch(self, indices: torch.Tensor) -> ConditionedLatents:
        """Latents and conditions at `indices` (int64, CPU), copies."""
        rows = torch.as_tensor(indices, dtype=torch.int64)

        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.index_select(0, rows)

        return ConditionedLatents(
            latents=pick(self.latents),
            angle=pick(self.angle),
            velocity=pick(self.velocity),
            mask=pick(self.mask),
        )


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


def _condition(
    values: np.ndarray | torch.Tensor | None, name: str, shape: tuple[int, ...]
) -> torch.Tensor | None:
    """A condition array as float32 of exactly `shape` (ValueError otherwise), or None."""
    if values is None:
        return None
    tensor = _as_tensor(values)
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    if tensor.is_complex() or not torch.isfinite(tensor.double()).all():
        raise ValueError(f"{name} must hold finite real numbers")
    return tensor.float()


def _as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        # torch.from_numpy warns on read-only memory; a copy is the safe way round it.
        array = array.copy()
    return torch.from_numpy(array)
