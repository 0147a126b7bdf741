"""AE latents as diffusion training data: encoding and per-channel standardisation (LDNS §6).

Variable-length trials (human data) use the masked variants: `LatentStats.fit_masked` takes
the mean and variance over real bins only, and `centre_valid` cuts each trial's real bins and
re-pads them centred in the full length with replicate padding, with a new centred mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.pipelines.progress import ProgressReporter


@dataclass(frozen=True)
class LatentStats:
    """Per-channel mean and std over (train trials, time); val/test reuse them."""

    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)
    clip: float | None

    def standardise(self, latents: np.ndarray) -> np.ndarray:
        """(n, T, d) raw latents -> standardised (and clipped when `clip` is set)."""
        out = (latents - self.mean) / self.std
        if self.clip is not None:
            np.clip(out, -self.clip, self.clip, out=out)
        return out.astype(np.float32, copy=False)

    def unstandardise(self, latents: torch.Tensor) -> torch.Tensor:
        """(n, T, d) standardised -> raw latents for the AE decoder."""
        mean = torch.as_tensor(self.mean, dtype=latents.dtype, device=latents.device)
        std = torch.as_tensor(self.std, dtype=latents.dtype, device=latents.device)
        return latents * std + mean

    def to_meta(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip": self.clip}

    @classmethod
    def from_meta(cls, meta: dict) -> LatentStats:
        return cls(
            mean=np.asarray(meta["mean"], dtype=np.float32),
            std=np.asarray(meta["std"], dtype=np.float32),
            clip=meta.get("clip"),
        )

    @classmethod
    def fit(cls, train_latents: np.ndarray, clip: float | None) -> LatentStats:
        flat = train_latents.reshape(-1, train_latents.shape[-1]).astype(np.float64)
        std = flat.std(axis=0)
        std[std == 0] = 1.0
        return cls(mean=flat.mean(axis=0).astype(np.float32), std=std.astype(np.float32), clip=clip)

    @classmethod
    def fit_masked(
        cls, train_latents: np.ndarray, mask: np.ndarray, clip: float | None
    ) -> LatentStats:
        """Per-channel mean/std over the real bins only (LDNS §6, human).

        train_latents (n, T, d), mask (n, T) with 1/True = real bin; padding never counts.
        """
        valid = np.asarray(mask).astype(bool)  # (n, T)
        if valid.shape != train_latents.shape[:2]:
            raise ValueError(
                f"mask shape {valid.shape} does not match latents {train_latents.shape}"
            )
        if not valid.any():
            raise ValueError("the mask marks no real bin")
        flat = train_latents[valid].astype(np.float64)  # (n_valid, d)
        std = flat.std(axis=0)
        std[std == 0] = 1.0
        return cls(mean=flat.mean(axis=0).astype(np.float32), std=std.astype(np.float32), clip=clip)


class CentredLatents(NamedTuple):
    latents: np.ndarray  # (n, length, d) real bins centred, replicate-padded on both sides
    mask: np.ndarray  # (n, length) uint8, 1 = the centred window of real bins


def centre_valid(
    latents: np.ndarray, mask: np.ndarray, *, length: int | None = None
) -> CentredLatents:
    """Cut each trial's real bins and re-pad them centred in `length` bins (LDNS §6, human).

    latents (n, T, d), mask (n, T) with 1/True = real bin (taken in time order, so right-padded
    trials keep their order); `length` defaults to T. A trial with L real bins starts at
    (length − L) // 2; the bins before repeat its first real value, those after its last
    (replicate padding). Returns float32 latents and the new uint8 mask of the centred window.
    """
    valid = np.asarray(mask).astype(bool)  # (n, T)
    n, steps = valid.shape
    if latents.shape[:2] != (n, steps):
        raise ValueError(f"mask shape {valid.shape} does not match latents {latents.shape}")
    length = steps if length is None else int(length)
    out = np.empty((n, length, latents.shape[-1]), dtype=np.float32)
    new_mask = np.zeros((n, length), dtype=np.uint8)
    for row in range(n):
        real = latents[row, valid[row]]  # (L, d)
        count = real.shape[0]
        if count == 0 or count > length:
            raise ValueError(f"trial {row} has {count} real bins; centring needs 1..{length}")
        start = (length - count) // 2
        out[row, :start] = real[0]  # replicate padding
        out[row, start : start + count] = real
        out[row, start + count :] = real[-1]
        new_mask[row, start : start + count] = 1
    return CentredLatents(latents=out, mask=new_mask)


@torch.no_grad()
def encode_spikes(
    autoencoder: SpikeAutoencoder,
    spikes: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 256,
    reporter: ProgressReporter | None = None,
    task: str = "encode",
) -> np.ndarray:
    """(n, T, N) counts -> (n, T, d) float32 latents, in batches, in fp32."""
    autoencoder.eval()
    out = np.empty(
        (spikes.shape[0], spikes.shape[1], autoencoder.config.latent_channels), np.float32
    )
    if reporter:
        reporter.start(task, spikes.shape[0])
    for start in range(0, spikes.shape[0], batch_size):
        batch = torch.from_numpy(spikes[start : start + batch_size]).to(device, torch.float32)
        out[start : start + batch.shape[0]] = autoencoder.encode(batch).float().cpu().numpy()
        if reporter:
            reporter.update(task, start + batch.shape[0])
    if reporter:
        reporter.finish(task)
    return out


@torch.no_grad()
def decode_latents(
    autoencoder: SpikeAutoencoder, latents: torch.Tensor, *, batch_size: int = 256
) -> torch.Tensor:
    """(n, T, d) raw latents -> (n, T, N) float32 rates, on the latents' device."""
    autoencoder.eval()
    chunks = [
        autoencoder.decode(latents[start : start + batch_size]).float()
        for start in range(0, latents.shape[0], batch_size)
    ]
    return torch.cat(chunks)
