"""Variable-length trials as batches: spike counts right-padded to a common length + a mask.

The human speech-BCI sentences (data-sources §4) are 1..512 bins long; they are stored padded
to 512 bins with a validity mask (interfaces §C), and the autoencoder objective scores only
the real bins of a `MaskedSpikes` batch (LDNS §4, human variant).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class MaskedSpikes(NamedTuple):
    """A batch of padded trials."""

    spikes: torch.Tensor  # (B, T, N) float32 counts; padded bins hold zeros
    mask: torch.Tensor  # (B, T) bool, True = real bin


class MaskedSpikeSource:
    """Padded counts (n, T, N) of an integer dtype with a 0/1 mask (n, T).

    Implements `neuralcli.training.objective.BatchSource`: the arrays stay in their compact
    stored dtypes and only the requested batch is gathered (spikes as float32, mask as bool).
    """

    def __init__(self, spikes: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor) -> None:
        spikes_t = _as_tensor(spikes)  # (n, T, N)
        mask_t = _as_tensor(mask)  # (n, T)
        if spikes_t.ndim != 3:
            raise ValueError(
                f"spikes must be (trials, time, neurons), got shape {tuple(spikes_t.shape)}"
            )
        if spikes_t.is_floating_point() or spikes_t.is_complex() or spikes_t.dtype == torch.bool:
            raise ValueError(f"spikes must hold integer counts, got dtype {spikes_t.dtype}")
        if tuple(mask_t.shape) != tuple(spikes_t.shape[:2]):
            raise ValueError(
                f"mask must be (trials, time) = {tuple(spikes_t.shape[:2])}, "
                f"got {tuple(mask_t.shape)}"
            )
        if mask_t.dtype != torch.bool:
            if mask_t.is_floating_point() or bool(((mask_t != 0) & (mask_t != 1)).any()):
                raise ValueError("mask must hold 0/1 integers or booleans")
            mask_t = mask_t != 0
        self.spikes = spikes_t
        self.mask = mask_t

    def __len__(self) -> int:
        return self.spikes.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n, T, N)."""
        return tuple(self.spikes.shape)

    def batch(self, indices: torch.Tensor) -> MaskedSpikes:
        """Trials at `indices` (int64, CPU): spikes float32 (B, T, N), mask bool (B, T)."""
        rows = torch.as_tensor(indices, dtype=torch.int64)
        return MaskedSpikes(
            spikes=self.spikes.index_select(0, rows).float(),
            mask=self.mask.index_select(0, rows),
        )


def _as_tensor(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        return array
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:
        # torch.from_numpy warns on read-only memory; a copy is the safe way round it.
        array = array.copy()
    return torch.from_numpy(array)
