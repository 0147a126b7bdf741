"""LDNS latent denoiser: ε-prediction network for DDPM on standardised latents (LDNS §7).

x_t (B, T, d) and integer timesteps (B,) -> ε̂ (B, T, d). Channels-last activations, S4D
time mixers (models/layers/s4d.py, LDNS §3.2) and DiT adaLN-Zero blocks.

Conditioning (LDNS §9), chosen by `DenoiserConfig.condition`; always conditioned, no
classifier-free guidance:
- "angle": c = [cos θ, sin θ] -> Linear(2, C/4) -> SiLU -> Linear(C/4, C/4), added to the
  timestep embedding before the blocks.
- "velocity": the clean velocity v (B, T, 2) in m/s, unnormalised, is concatenated to x_t as
  extra input channels (Cin = d + 2); the outputs of those channels are sliced off.
- "length": the 0/1 mask (B, T) of real bins is concatenated as one extra channel (Cin = d + 1);
  its output is sliced off. The loss is masked by the objective.

Reproduced behaviour of the original (LDNS §7, pitfall 3): the S4 layer is always
bidirectional and there is no activation on the MLP output (its "act2" is Identity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neuralcli.models.autoencoder import (
    GroupedPointwise,
    linear_to_channel_major,
    modulated_instance_norm,
    pointwise_groups,
    ssm_parameter_groups,
)
from neuralcli.models.layers.fused import (
    ChannelMixer,
    TimeMixer,
    fused_block,
    to_channel_major,
    to_channels_last,
)
from neuralcli.models.layers.s4d import S4D
from neuralcli.models.pretrained import load_pretrained

# Extra input channels each condition concatenates to x_t (LDNS §9).
CONDITION_CHANNELS = {"none": 0, "angle": 0, "velocity": 2, "length": 1}
CONDITIONS = tuple(CONDITION_CHANNELS)


@dataclass
class DenoiserConfig:
    """Sizes of the denoiser. Defaults: LDNS Lorenz (LDNS §7 table).

    `linear_path_init` sets how conv_out starts. "identity" (ours, the default) makes
    conv_out∘conv_in the identity map, so that with every block the identity at init the
    network starts as ε̂ = x_t, the right answer at high noise. The blocks see only
    instance-normalised activations, so each channel's temporal mean reaches the output only
    through this linear path; from a random start our short schedules learn it too slowly and
    sampling then diverges (the mean component grows by up to e^(Σβ/2) over 1000 steps).
    "default" is the reference's PyTorch init, with conv_out's weight and bias multiplied by
    `output_scale_init` (1.0 for Lorenz, 0.1 for monkey and human, LDNS §7).

    `condition` is "none" (unconditional), "angle", "velocity" or "length" (LDNS §9; module
    docstring). Extra input channels count towards the grouping rule of conv_in / conv_out, so
    velocity (Cin = d + 2) and length (Cin = d + 1) models use groups = 1 at the LDNS sizes.
    """

    latent_channels: int = 8
    hidden_channels: int = 64
    num_blocks: int = 4
    state_size: int = 64
    output_scale_init: float = 1.0
    time_embedding_dim: int = 256
    linear_path_init: str = "identity"
    condition: str = "none"

    def __post_init__(self) -> None:
        for name in ("latent_channels", "hidden_channels", "num_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_channels % 4:
            raise ValueError(
                f"hidden_channels must be a multiple of 4 (embedding is C/4), "
                f"got {self.hidden_channels}"
            )
        size = self.state_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 2 or size % 2:
            raise ValueError(f"state_size must be an even integer >= 2, got {size!r}")
        dim = self.time_embedding_dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(f"time_embedding_dim must be an even integer >= 2, got {dim!r}")
        if not isinstance(self.output_scale_init, (int, float)) or self.output_scale_init <= 0:
            raise ValueError(f"output_scale_init must be positive, got {self.output_scale_init!r}")
        if self.linear_path_init not in ("identity", "default"):
            raise ValueError(
                f"linear_path_init must be 'identity' or 'default', got {self.linear_path_init!r}"
            )
        if self.condition not in CONDITIONS:
            raise ValueError(
                f"condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}"
            )

    @property
    def condition_channels(self) -> int:
        """Extra input channels the condition adds: 2 (velocity), 1 (length mask) or 0."""
        return CONDITION_CHANNELS[self.condition]

    @property
    def input_channels(self) -> int:
        """Cin of conv_in and Cout of conv_out: latent channels plus condition channels."""
        return self.latent_channels + self.condition_channels


def timestep_frequencies(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): [cos(t·f_k), sin(t·f_k)], f_k = 10000^(−k/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )  # (dim/2,) LDNS §7
    args = timesteps.float()[:, None] * freqs[None]  # (B, dim/2)
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)  # (B, dim)


class TimestepEmbedder(nn.Module):
    """sinusoidal(t) -> Linear -> SiLU -> Linear: (B,) int -> (B, E) (LDNS §7)."""

    def __init__(self, *, embedding_channels: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(
            nn.Linear(frequency_dim, embedding_channels),
            nn.SiLU(),
            nn.Linear(embedding_channels, embedding_channels),
        )

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_frequencies(timesteps, self.frequency_dim))  # (B, E)


class AngleEmbedder(nn.Module):
    """[cos θ, sin θ] -> Linear -> SiLU -> Linear: (B,) radians -> (B, E) (LDNS §9)."""

    def __init__(self, *, embedding_channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(2, embedding_channels),
            nn.SiLU(),
            nn.Linear(embedding_channels, embedding_channels),
        )

    def forward(self, angle: torch.Tensor) -> torch.Tensor:
        angle = angle.float()
        return self.mlp(torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1))  # (B, E)


class DenoiserBlock(nn.Module):
    """DiT adaLN-Zero block (LDNS §7); the identity map at initialisation."""

    def __init__(self, *, channels: int, embedding_channels: int, state_size: int) -> None:
        super().__init__()
        self.modulation = nn.Linear(embedding_channels, 6 * channels)
        nn.init.zeros_(self.modulation.weight)  # adaLN-Zero: every block starts as identity
        nn.init.zeros_(self.modulation.bias)
        self.s4 = S4D(channels=channels, state_size=state_size, bidirectional=True)
        self.mlp_in = nn.Linear(channels, 2 * channels)
        self.mlp_out = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), embedding (B, E) -> (B, T, C)."""
        if self.s4.uses_toeplitz(x.shape[1]):
            x_cm = to_channel_major(x.float())  # (C, B, T)
            return to_channels_last(self.forward_channel_major(x_cm, embedding))
        x = x.float()  # the residual stream stays fp32 under autocast
        mod = self.modulation(F.gelu(embedding)).float()[:, None, :]  # (B, 1, 6C)
        shift_tm, scale_tm, gate_tm, shift_cm, scale_cm, gate_cm = mod.chunk(6, dim=-1)
        # Plain composition (long inputs, FFT convolution); same math as the fused path.
        h = F.gelu(self.s4(modulated_instance_norm(x, shift_tm, scale_tm)))  # (B, T, C)
        x = torch.addcmul(x, gate_tm, h)  # (B, T, C)
        h = modulated_instance_norm(x, shift_cm, scale_cm)  # (B, T, C)
        h = self.mlp_out(F.gelu(self.mlp_in(h))).float()  # (B, T, C); act2 = Identity
        return torch.addcmul(x, gate_cm, h)  # (B, T, C)

    def forward_channel_major(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Fused path for Toeplitz lengths: x (C, B, T), embedding (B, E) -> (C, B, T)."""
        x = x.float()  # the residual stream stays fp32 under autocast
        # Contiguous rows: broadcasting a strided (C, B, 1) would give permuted outputs.
        mod = self.modulation(F.gelu(embedding)).float().t().contiguous()[:, :, None]  # (6C, B, 1)
        shift_tm, scale_tm, gate_tm, shift_cm, scale_cm, gate_cm = mod.chunk(6, dim=0)
        time_mixer = TimeMixer(
            shift=shift_tm,
            scale=scale_tm,
            taps=self.s4.taps(x.shape[-1]),  # (C, 2T-1)
            gain=gate_tm,
            bias=None,
        )
        channel_mixer = ChannelMixer(
            shift=shift_cm,
            scale=scale_cm,
            w1=self.mlp_in.weight,
            b1=self.mlp_in.bias,
            w2=self.mlp_out.weight,
            b2=self.mlp_out.bias,
            gate=gate_cm,
        )
        return fused_block(x, time_mixer, channel_mixer)  # (C, B, T)


class Denoiser(nn.Module):
    """ε-model: x_t (B, T, d), t (B,) int64 [, condition] -> ε̂ (B, T, d) (LDNS §7, §9)."""

    kind = "denoiser"

    def __init__(self, *, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        channels, inputs = config.hidden_channels, config.input_channels
        groups = pointwise_groups(channels, inputs)  # LDNS §7: g = Cin if C % Cin == 0, C > Cin
        embedding_channels = channels // 4
        self.conv_in = GroupedPointwise(in_channels=inputs, out_channels=channels, groups=groups)
        self.time_embedding = TimestepEmbedder(
            embedding_channels=embedding_channels, frequency_dim=config.time_embedding_dim
        )
        # Unconditional models keep exactly their old modules and state-dict keys.
        if config.condition == "angle":
            self.angle_embedding = AngleEmbedder(embedding_channels=embedding_channels)
        self.blocks = nn.ModuleList(
            DenoiserBlock(
                channels=channels,
                embedding_channels=embedding_channels,
                state_size=config.state_size,
            )
            for _ in range(config.num_blocks)
        )
        self.conv_out = GroupedPointwise(in_channels=channels, out_channels=inputs, groups=groups)
        with torch.no_grad():
            if config.linear_path_init == "identity":
                self._make_linear_path_identity()
            else:  # LDNS §7: monkey/human shrink the output layer at init
                self.conv_out.weight.mul_(config.output_scale_init)
                self.conv_out.bias.mul_(config.output_scale_init)

    def _make_linear_path_identity(self) -> None:
        """Set conv_out to the pseudo-inverse of conv_in: conv_out(conv_in(x)) = x."""
        dense_in = self.conv_in.dense_weight()  # (C, Cin), block-diagonal when grouped
        inverse = torch.linalg.pinv(dense_in.double())  # (Cin, C), block-diagonal likewise
        groups = self.conv_out.groups
        rows, cols = self.conv_out.weight.shape[0] // groups, self.conv_out.weight.shape[1]
        blocks = [
            inverse[j * rows : (j + 1) * rows, j * cols : (j + 1) * cols] for j in range(groups)
        ]
        self.conv_out.weight.copy_(torch.cat(blocks, dim=0))  # (Cin, C/g)
        self.conv_out.bias.copy_(-inverse @ self.conv_in.bias.double())  # (Cin,)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        *,
        angle: torch.Tensor | None = None,
        velocity: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, d) noisy latents, timesteps (B,) int64 in [0, 999] -> ε̂ (B, T, d).

        The condition named by `config.condition` is required and the others must be None:
        angle (B,) radians; velocity (B, T, 2) clean velocity in m/s; mask (B, T) 0/1.
        """
        self._check_conditions(x, angle, velocity, mask)
        embedding = self.time_embedding(timesteps.to(x.device))  # (B, C/4)
        if angle is not None:
            embedding = embedding + self.angle_embedding(angle.to(x.device))  # LDNS §9
        if velocity is not None:  # LDNS §9: concat(noisy z, clean v)
            x = torch.cat((x, velocity.to(device=x.device, dtype=x.dtype)), dim=-1)  # (B, T, d+2)
        elif mask is not None:  # LDNS §9: concat(noisy z, mask)
            x = torch.cat((x, mask.to(device=x.device, dtype=x.dtype)[..., None]), dim=-1)
        if self.blocks[0].s4.uses_toeplitz(x.shape[1]):
            # Channel-major inside the stack: no per-block layout copies (fused.py).
            h = linear_to_channel_major(self.conv_in, x)  # (C, B, T)
            for block in self.blocks:
                h = block.forward_channel_major(h, embedding)  # (C, B, T)
            out = self.conv_out.from_channel_major(h)  # (B, T, Cin)
        else:
            h = self.conv_in(x)  # (B, T, C)
            for block in self.blocks:
                h = block(h, embedding)  # (B, T, C)
            out = self.conv_out(h)  # (B, T, Cin)
        if self.config.condition_channels:
            out = out[..., : self.config.latent_channels]  # LDNS §8: extra outputs discarded
        return out  # (B, T, d)

    def _check_conditions(
        self,
        x: torch.Tensor,
        angle: torch.Tensor | None,
        velocity: torch.Tensor | None,
        mask: torch.Tensor | None,
    ) -> None:
        """ValueError unless exactly the configured condition is given, with matching shapes."""
        given = {"angle": angle, "velocity": velocity, "length": mask}
        wanted = self.config.condition
        extra = [name for name, value in given.items() if value is not None and name != wanted]
        if extra:
            raise ValueError(
                f"this denoiser is conditioned on {wanted!r} but got {', '.join(extra)}; "
                "pass only the configured condition"
            )
        batch, length = x.shape[:2]
        expected = {
            "angle": (batch,),
            "velocity": (batch, length, 2),
            "length": (batch, length),
        }
        if wanted in expected:
            value = given[wanted]
            argument = "mask" if wanted == "length" else wanted
            if value is None:
                raise ValueError(f"this denoiser is conditioned on {wanted!r}: pass {argument}=")
            if tuple(value.shape) != expected[wanted]:
                raise ValueError(
                    f"{argument} must have shape {expected[wanted]} for x of shape "
                    f"{tuple(x.shape)}, got {tuple(value.shape)}"
                )

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: S4D A and dt without weight decay, the rest with `weight_decay`."""
        return ssm_parameter_groups(self, weight_decay)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, *, device: str = "cpu") -> Denoiser:
        """Rebuild from run_dir/model.{json,safetensors}; RunDirError if missing or wrong."""
        return load_pretrained(cls, DenoiserConfig, run_dir, device=device)
