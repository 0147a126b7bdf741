"""Spike → LFP distillation objective (distillation §8, "paper Eq. 1" [repro]).

    L = MSE(y, f(LFP)) + λ · (1 − mean_{b,t} cos(z^LFP_{b,t}, z^spike_{b,t})),  λ = 5

The student is an LfpEncoder (usually single-session, `LfpEncoder.single_session`); its
reconstruction is our per-token readout (models/lfp_encoder.py), scored on the hidden
tokens' real channels when mask_ratio > 0, else on every real channel. z^LFP and z^spike
are both pooled per 10 ms step (B, T, d); the frozen teacher sees the same segments' spike
counts (PairedBatch pairs them by session and segment), unmasked, under torch.no_grad.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcli.data.paired import PairedBatch
from neuralcli.errors import ConfigError
from neuralcli.models.spike_teacher import SpikeTeacher
from neuralcli.training.lfp_objective import draw_lfp_mask, reconstruction_mse
from neuralcli.training.masking import unwrap_model
from neuralcli.training.objective import LossOutput
from neuralcli.training.teacher_objective import map_sessions


@dataclass
class DistillLossConfig:
    alignment_weight: float = 5.0  # λ, [repro] distillation §8 and §11
    mask_ratio: float = 0.0  # §8: unknown whether the reconstruction used masked input
    # Ours, off by default (the paper's cosine is on the raw latents): subtract each latent
    # dimension's mean over the batch's items and steps before the cosine, so a direction
    # shared by every step cannot make the alignment trivially high.
    center_latents: bool = False

    def __post_init__(self) -> None:
        weight = self.alignment_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"alignment_weight must be >= 0, got {weight!r}")
        if isinstance(self.mask_ratio, bool) or not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio!r}")
        if not isinstance(self.center_latents, bool):
            raise ValueError(f"center_latents must be true or false, got {self.center_latents!r}")


def alignment_term(
    student: Tensor, teacher: Tensor, *, center: bool = False
) -> tuple[Tensor, Tensor]:
    """(1 − mean cosine, mean cosine) of student and teacher latents (B, T, d) over items
    and time steps (distillation §8), computed in float32; `center` first subtracts each
    one's mean over items and steps (per latent dimension)."""
    student, teacher = student.float(), teacher.float()
    if center:
        student = student - student.mean(dim=(0, 1), keepdim=True)  # (B, T, d)
        teacher = teacher - teacher.mean(dim=(0, 1), keepdim=True)  # (B, T, d)
    cosine = F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)  # (B, T)
    mean = cosine.mean()
    return 1.0 - mean, mean


class DistillationObjective:
    """Objective for an LfpEncoder student distilled from a frozen SpikeTeacher.

    teacher_session_map / student_session_map (n_dataset_sessions,) int64: dataset session
    index (batch.session) -> the teacher's / student's vocabulary index. The teacher is put
    in eval mode with requires_grad False and is never trained; it follows the batch to its
    device on first use.
    """

    def __init__(
        self,
        *,
        config: DistillLossConfig,
        teacher: SpikeTeacher,
        teacher_session_map: Tensor,
        student_session_map: Tensor,
    ) -> None:
        self.config = config
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_session_map = teacher_session_map.long()
        self.student_session_map = student_session_map.long()

    def training_loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        """Loss of one batch; a reconstruction mask (if any) comes from torch's global RNG."""
        return self._loss(model, batch)

    def validation_loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        """Same loss; the loop seeds torch's RNG for validation, so the masks repeat."""
        return self._loss(model, batch)

    def teacher_latents(self, batch: PairedBatch) -> Tensor:
        """The frozen teacher's representation (B, T, d) of the batch's full spike windows."""
        device = batch.spikes.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        # The loop may switch modules to train mode; the teacher must never use dropout.
        self.teacher.eval()
        session = map_sessions(self.teacher_session_map, batch.session)  # (B,)
        with torch.no_grad():
            return self.teacher(batch.spikes, session, batch.n_units).latents  # (B, T, d)

    def _loss(self, model: nn.Module, batch: PairedBatch) -> LossOutput:
        student = unwrap_model(model)
        targets = student.patch_targets(batch.lfp, batch.n_channels)  # (B, N, S)
        mask = draw_lfp_mask(student, targets, self.config.mask_ratio)  # (B, N) | None
        session = map_sessions(self.student_session_map, batch.session)  # (B,)
        out = model(batch.lfp, session, batch.n_channels, mask)
        z_teacher = self.teacher_latents(batch)  # (B, T, d)
        if out.latents.shape != z_teacher.shape:
            raise ConfigError(
                f"student latents {tuple(out.latents.shape)} and teacher latents "
                f"{tuple(z_teacher.shape)} differ; give the student the teacher's d_model"
            )
        reconstruction = reconstruction_mse(out.reconstruction, targets, mask)
        alignment, cosine = alignment_term(
            out.latents, z_teacher, center=self.config.center_latents
        )
        loss = reconstruction + self.config.alignment_weight * alignment
        return LossOutput(
            loss=loss,
            metrics={
                "reconstruction_mse": float(reconstruction.detach()),
                "cosine": float(cosine.detach()),
                "alignment": float(alignment.detach()),
            },
        )
