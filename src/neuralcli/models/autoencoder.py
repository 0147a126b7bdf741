"""LDNS spike autoencoder: counts (B, T, N) -> latents (B, T, d) -> Poisson rates (B, T, N).

Architecture of LDNS §2 with the diagonal S4D layer of §3.2 (see models/layers/s4d.py for
that deviation). Activations are channels last, (B, T, C), so every 1×1 convolution of the
original is one `nn.Linear` over B·T rows; InstanceNorm over time is a fused mean/variance.

Other differences from the original, none changing the function class:
- the static adaLN parameter holds the four used rows (shift/scale for the time and the
  channel mixer), not six: the original's two gate rows are never used;
- S4D's A and dt can be kept out of weight decay via `parameter_groups` (the original decays
  everything, LDNS §12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from neuralcli.models.layers.fused import (
    ChannelMixer,
    TimeMixer,
    fused_block,
    instance_norm_stats,
    modulate,
    to_channel_major,
    to_channels_last,
)
from neuralcli.models.layers.s4d import S4D
from neuralcli.models.pretrained import load_pretrained


@dataclass
class AutoencoderConfig:
    """Sizes of the autoencoder. Defaults: LDNS Lorenz (LDNS §2 table)."""

    n_neurons: int = 128
    hidden_channels: int = 256
    latent_channels: int = 8
    num_blocks: int = 4
    bidirectional: bool = True
    state_size: int = 64

    def __post_init__(self) -> None:
        for name in ("n_neurons", "hidden_channels", "latent_channels", "num_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"bidirectional must be true or false, got {self.bidirectional!r}")
        size = self.state_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 2 or size % 2:
            raise ValueError(f"state_size must be an even integer >= 2, got {size!r}")


class AutoencoderOutput(NamedTuple):
    rates: torch.Tensor  # (B, T, N) Poisson rates, positive
    latents: torch.Tensor  # (B, T, d)


def pointwise_groups(channels: int, other: int) -> int:
    """LDNS grouping rule for a 1×1 map between `channels` and `other` < channels channels."""
    return other if channels % other == 0 and channels > other else 1


class GroupedPointwise(nn.Module):
    """Grouped 1×1 convolution over channels-last input: (..., in) -> (..., out).

    Weight layout and initialisation are those of `nn.Conv1d(in, out, 1, groups=g)`; the
    block-diagonal dense matrix is assembled each call so the map is one matmul.
    """

    def __init__(self, *, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide {in_channels} and {out_channels}")
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups))
        self.bias = nn.Parameter(torch.empty(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Conv1d
        bound = 1.0 / math.sqrt(in_channels // groups)
        nn.init.uniform_(self.bias, -bound, bound)

    def dense_weight(self) -> torch.Tensor:
        """(out, in) block-diagonal matrix: group j maps its inputs to its outputs only."""
        out_channels, in_per_group = self.weight.shape
        blocks = self.weight.view(self.groups, out_channels // self.groups, in_per_group)
        return torch.block_diag(*blocks.unbind(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dense_weight(), self.bias)

    def from_channel_major(self, x: torch.Tensor) -> torch.Tensor:
        """(in, B, T) -> (B, T, out); only the small (out, B·T) result is transposed."""
        channels, batch, length = x.shape
        y = torch.addmm(self.bias[:, None], self.dense_weight(), x.reshape(channels, -1))
        return y.t().reshape(batch, length, -1)  # (B, T, out)


def linear_to_channel_major(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a linear map (nn.Linear or GroupedPointwise) to x (B, T, in) -> (out, B, T).

    Reads x through a transposed view, so the (out, B·T) result needs no transpose copy.
    """
    batch, length, channels = x.shape
    weight = layer.dense_weight() if isinstance(layer, GroupedPointwise) else layer.weight
    y = torch.addmm(layer.bias[:, None], weight, x.reshape(-1, channels).t())  # (out, B·T)
    return y.view(-1, batch, length)


def modulated_instance_norm(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """InstanceNorm1d over time (no affine, eps 1e-5) then ·(1 + scale) + shift.

    x (B, T, C); shift, scale broadcast as (C,) or (B, 1, C). Autograd-composed: the
    reference for the fused block functions and the path for long (FFT) inputs.
    """
    mean, rstd = instance_norm_stats(x)  # (B, 1, C) each
    return modulate(x, mean, rstd, shift, scale)  # (B, T, C)


class AEBlock(nn.Module):
    """Residual pre-norm block of LDNS §2: S4 time mixer, then an MLP channel mixer."""

    def __init__(self, *, channels: int, bidirectional: bool, state_size: int) -> None:
        super().__init__()
        # Static adaLN rows: shift_tm, scale_tm, shift_cm, scale_cm (zero-init, LDNS §2).
        self.modulation = nn.Parameter(torch.zeros(4, channels))
        self.s4 = S4D(channels=channels, state_size=state_size, bidirectional=bidirectional)
        # Depthwise 1×1 conv after GELU: per-channel scale and bias, init as nn.Conv1d.
        self.post_scale = nn.Parameter(torch.empty(channels).uniform_(-1.0, 1.0))
        self.post_bias = nn.Parameter(torch.empty(channels).uniform_(-1.0, 1.0))
        self.mlp_in = nn.Linear(channels, 2 * channels, bias=False)
        self.mlp_out = nn.Linear(2 * channels, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C) float32 -> (B, T, C) float32."""
        if self.s4.uses_toeplitz(x.shape[1]):
            return to_channels_last(self.forward_channel_major(to_channel_major(x.float())))
        x = x.float()  # the residual stream stays fp32 under autocast
        shift_tm, scale_tm, shift_cm, scale_cm = self.modulation.unbind(0)  # (C,) each
        # Plain composition (long inputs, FFT convolution); same math as the fused path.
        h = self.s4(modulated_instance_norm(x, shift_tm, scale_tm))  # (B, T, C)
        x = x + torch.addcmul(self.post_bias, F.gelu(h), self.post_scale)  # (B, T, C)
        h = modulated_instance_norm(x, shift_cm, scale_cm)  # (B, T, C)
        return x + self.mlp_out(F.gelu(self.mlp_in(h))).float()  # (B, T, C)

    def forward_channel_major(self, x: torch.Tensor) -> torch.Tensor:
        """Fused path for Toeplitz lengths: x (C, B, T) -> (C, B, T), float32."""
        x = x.float()  # the residual stream stays fp32 under autocast
        rows = self.modulation[:, :, None, None]  # (4, C, 1, 1)
        shift_tm, scale_tm, shift_cm, scale_cm = rows.unbind(0)  # (C, 1, 1) each
        time_mixer = TimeMixer(
            shift=shift_tm,
            scale=scale_tm,
            taps=self.s4.taps(x.shape[-1]),  # (C, 2T-1)
            gain=self.post_scale[:, None, None],
            bias=self.post_bias[:, None, None],
        )
        channel_mixer = ChannelMixer(
            shift=shift_cm,
            scale=scale_cm,
            w1=self.mlp_in.weight,
            b1=None,
            w2=self.mlp_out.weight,
            b2=None,
            gate=None,
        )
        return fused_block(x, time_mixer, channel_mixer)  # (C, B, T)


class SpikeAutoencoder(nn.Module):
    """LDNS autoencoder (LDNS §2): no temporal downsampling, time-pointwise decoder."""

    kind = "autoencoder"

    def __init__(self, *, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        channels, latent = config.hidden_channels, config.latent_channels
        groups = pointwise_groups(channels, latent)
        self.encoder_in = nn.Linear(config.n_neurons, channels)
        self.blocks = nn.ModuleList(
            AEBlock(
                channels=channels,
                bidirectional=config.bidirectional,
                state_size=config.state_size,
            )
            for _ in range(config.num_blocks)
        )
        self.bottleneck = GroupedPointwise(in_channels=channels, out_channels=latent, groups=groups)
        self.unbottleneck = GroupedPointwise(
            in_channels=latent, out_channels=channels, groups=groups
        )
        self.decoder_out = nn.Linear(channels, config.n_neurons)

    def encode(self, spikes: torch.Tensor) -> torch.Tensor:
        """spikes (B, T, N) float -> latents (B, T, d) (pre-activation, LDNS §6)."""
        if self.blocks[0].s4.uses_toeplitz(spikes.shape[1]):
            # Channel-major inside the stack: no per-block layout copies (fused.py).
            h = linear_to_channel_major(self.encoder_in, spikes)  # (C, B, T)
            for block in self.blocks:
                h = block.forward_channel_major(h)  # (C, B, T)
            return self.bottleneck.from_channel_major(h)  # (B, T, d)
        h = self.encoder_in(spikes)  # (B, T, C)
        for block in self.blocks:
            h = block(h)  # (B, T, C)
        return self.bottleneck(h)  # (B, T, d)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents (B, T, d) -> rates (B, T, N); pointwise in time (LDNS §2)."""
        h = F.gelu(self.unbottleneck(latents))  # (B, T, C)
        return F.softplus(self.decoder_out(h))  # (B, T, N)

    def forward(self, spikes: torch.Tensor) -> AutoencoderOutput:
        latents = self.encode(spikes)  # (B, T, d)
        return AutoencoderOutput(rates=self.decode(latents), latents=latents)

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: S4D A and dt without weight decay, the rest with `weight_decay`."""
        return ssm_parameter_groups(self, weight_decay)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, *, device: str = "cpu") -> SpikeAutoencoder:
        """Rebuild from run_dir/model.{json,safetensors}; RunDirError if missing or wrong."""
        return load_pretrained(cls, AutoencoderConfig, run_dir, device=device)


def ssm_parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split a model's parameters: every S4D layer's A and log dt decay-free, rest decayed."""
    no_decay = {
        id(p)
        for module in model.modules()
        if isinstance(module, S4D)
        for p in module.ssm_parameters()
    }
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]
