"""Masked LFP reconstruction: the multi-session MS-LFP objective (distillation §7).

The release has no MS-LFP objective; the reproduction says "reconstruction loss only". Ours:
hide round(0.5 · n_valid) random (time, patch) tokens per item and score the MSE of the
per-token readout on the hidden tokens' real channels. The ratio 0.5 is our untuned choice
(distillation §7 gives none; the spike teacher uses 0.6 [repro]); it is a preset value.
mask_ratio 0 scores every real entry (plain autoencoding). Padded channels never enter the
loss.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from neuralcli.data.paired import PairedBatch
from neuralcli.errors import ConfigError
from neuralcli.models.layers.tokenizer import Patches
from neuralcli.training.masking import random_token_mask, unwrap_model
from neuralcli.training.objective import LossOutput
from neuralcli.training.teacher_objective import map_sessions


@dataclass
class LfpLossConfig:
    mask_ratio: float = 0.5  # our choice (distillation §7 is silent), see the module docstring

    def __post_init__(self) -> None:
        if isinstance(self.mask_ratio, bool) or not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio!r}")


def draw_lfp_mask(encoder: nn.Module, targets: Patches, ratio: float) -> Tensor | None:
    """Token mask (B, T*P) for an LfpEncoder, or None when ratio is 0.

    ConfigError when the ratio and the encoder's mask vector disagree: a mask needs the
    vector, and a vector no forward uses would leave a parameter without gradient (DDP).
    """
    has_vector = bool(encoder.config.mask_token)
    if ratio > 0 and not has_vector:
        raise ConfigError(
            f"mask_ratio {ratio} needs an LFP encoder with mask_token: true; set mask_ratio 0 "
            "or build the model with a mask token"
        )
    if ratio == 0 and has_vector:
        raise ConfigError(
            "mask_ratio 0 leaves the LFP encoder's mask vector untrained (DDP needs every "
            "parameter used); build it with mask_token: false (LfpEncoder.single_session("
            "name, mask_token=False) for a student) or set mask_ratio > 0"
        )
    if ratio == 0:
        return None
    token_valid = targets.entry_valid.any(dim=-1)  # (B, N)
    return random_token_mask(token_valid, token_valid.shape, ratio)


def reconstruction_mse(reconstruction: Tensor, targets: Patches, mask: Tensor | None) -> Tensor:
    """Mean squared error over the scored entries: real channels of hidden tokens (all
    real channels when mask is None). reconstruction (B, T*P, S); mask (B, T*P) bool."""
    scored = targets.entry_valid  # (B, N, S)
    if mask is not None:
        scored = scored & mask[:, :, None]
    error = (reconstruction.float() - targets.values.float()).square()  # (B, N, S)
    return error.masked_fill(~scored, 0.0).sum() / scored.sum().clamp_min(1)


class LfpReconstructionObjective:
    """Masked reconstruction for a (multi-session) LfpEncoder on PairedBatch's LFP.

    session_map (n_dataset_sessions,) int64: dataset session index (batch.session) ->
    the encoder's vocabulary index.
    """

    def __init__(self, *, config: LfpLossConfig, session_map: Tensor) -> None:
        self.config = config
        self.session_map = session_map.long()

    def training_loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        """Masked loss; the mask is drawn from torch's global RNG."""
        return self._loss(model, batch)

    def validation_loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        """Same loss; the loop seeds torch's RNG for validation, so the masks repeat."""
        return self._loss(model, batch)

    def _loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        encoder = unwrap_model(model)
        targets = encoder.patch_targets(batch.lfp, batch.n_channels)  # (B, N, S)
        mask = draw_lfp_mask(encoder, targets, self.config.mask_ratio)  # (B, N) | None
        session = map_sessions(self.session_map, batch.session)  # (B,)
        out = model(batch.lfp, session, batch.n_channels, mask)
        loss = reconstruction_mse(out.reconstruction, targets, mask)
        return LossOutput(loss=loss, metrics={"reconstruction_mse": float(loss.detach())})
