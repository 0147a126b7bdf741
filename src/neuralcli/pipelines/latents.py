"""AE latents as diffusion training data: encoding and per-channel standardisation (LDNS §6)."""

from __future__ import annotations

from dataclasses import dataclass

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
