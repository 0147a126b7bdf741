"""LLaMA-style bidirectional transformer encoder of the distillation models (distillation §4).

Pre-norm blocks: x = x + Dropout(Attention(RMSNorm(x))), x = x + GatedMLP(RMSNorm(x)), then a
final RMSNorm. Attention uses RoPE (rotate-half) on q and k with the tokens' time-step ids
and runs through `torch.nn.functional.scaled_dot_product_attention`, bidirectional, with no
attention-probability dropout (distillation §4, §13.7). Module names follow the released
checkpoint keys (distillation §12): `layers.{i}.attention.{qkv_proj,o_proj}`,
`layers.{i}.mlp.{gate_proj,up_proj,down_proj}`, `layers.{i}.norm{1,2}`, `norm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = ("gelu", "silu")


@dataclass
class TransformerConfig:
    d_model: int = 256
    num_layers: int = 10
    num_heads: int = 8
    mlp_ratio: float = 4.0  # d_ff = int(mlp_ratio * d_model)
    dropout: float = 0.1  # attention output (before o_proj) and block outputs, MLP hidden
    activation: str = "gelu"  # "gelu" (GeGLU, the encoder default) | "silu" (SwiGLU)
    norm_eps: float = 1e-6
    rope_base: float = 10000.0
    max_positions: int = 1024  # RoPE cache length (time ids must be < this)


class RMSNorm(nn.Module):
    """y = w ⊙ x / sqrt(mean(x²) + eps) over the last axis (distillation §4). (..., dim)."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return (x * _rms_stats(x, self.eps)).to(x.dtype) * self.weight


def rotate_half(x: Tensor) -> Tensor:
    """[a, b] -> [−b, a] along the last axis split in halves (distillation §4)."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE, rotate-half convention: dimension j pairs with j + d_head/2, inv_freq_j =
    base^(−2j/d_head), angle = t·inv_freq_j, q' = q·cos + rotate_half(q)·sin (distillation §4).

    cos/sin are cached for time ids 0..max_positions−1 in float32 (non-persistent buffers).
    """

    def __init__(self, head_dim: int, *, base: float = 10000.0, max_positions: int = 1024) -> None:
        super().__init__()
        if head_dim % 2 != 0:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        self.max_positions = max_positions
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.arange(max_positions, dtype=torch.float64)[:, None] * inv_freq  # (L, Dh/2)
        angles = torch.cat((angles, angles), dim=-1)  # (L, Dh)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.register_buffer("cos_cached", angles.cos().float(), persistent=False)
        self.register_buffer("sin_cached", angles.sin().float(), persistent=False)

    def cos_sin(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions (N,) or (B, N) int64 -> cos, sin (N, Dh) or (B, N, Dh), float32."""
        return self.cos_cached[positions], self.sin_cached[positions]

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """x (B, H, N, Dh) rotated by the angles of positions (N,) or (B, N)."""
        cos, sin = self.cos_sin(positions)
        if cos.dim() == 3:
            cos, sin = cos[:, None], sin[:, None]  # (B, 1, N, Dh)
        return (x * cos + rotate_half(x) * sin).to(x.dtype)


def _compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype matmuls run in: autocast's lower precision when it is on, else x's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _drop_mask(like: Tensor, p: float) -> Tensor:
    """Bool dropout mask (True = dropped), one byte per entry, shaped like `like`.

    Drawn as uniform int16 against a threshold, about twice as fast on a CPU as
    bernoulli_: the drop probability is p rounded to a multiple of 2⁻¹⁶. The 1/(1 − p)
    rescaling is folded into the next (small) weight by the callers.
    """
    threshold = round(p * 65536) - 32768
    bits = torch.randint(-32768, 32768, like.shape, dtype=torch.int16, device=like.device)
    return bits < threshold


def _masked(x: Tensor, drop: Tensor | None) -> Tensor:
    """x with dropped entries zeroed (a new tensor; x itself when there is no mask)."""
    return x if drop is None else x.masked_fill(drop, 0)


def _stats_dtype(x: Tensor) -> torch.dtype:
    """float32 at least: statistics of bf16 inputs are taken in float32, float64 stays."""
    return torch.promote_types(x.dtype, torch.float32)


def _rms_stats(x: Tensor, eps: float) -> Tensor:
    """1 / sqrt(mean(x²) + eps) over the last axis, ≥ float32, kept as size 1 (distillation §4)."""
    x = x.to(_stats_dtype(x))
    return torch.rsqrt(torch.linalg.vecdot(x, x).unsqueeze(-1) / x.shape[-1] + eps)


def _rms_norm_backward(
    grad_normed: Tensor, x: Tensor, rstd: Tensor, weight: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients of y = w ⊙ x·r, r = (mean(x²) + eps)^(−1/2), w.r.t. x and w.

    With x̂ = x·r and g = dy ⊙ w: dx = r·(g − x̂·mean(g ⊙ x̂)), dw = Σ dy ⊙ x̂.
    """
    dtype = _stats_dtype(x)
    x = x.to(dtype)
    grad_normed = grad_normed.to(dtype)  # a fresh matmul output: free to overwrite
    x_hat = x * rstd  # (..., d)
    grad_weight = torch.einsum("...i,...i->i", grad_normed, x_hat)
    g = grad_normed.mul_(weight)
    dot = torch.linalg.vecdot(g, x_hat).unsqueeze(-1) / x.shape[-1]  # (..., 1)
    grad_x = g.sub_(x_hat.mul_(dot)).mul_(rstd)
    return grad_x, grad_weight


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])


class _NormLinear(torch.autograd.Function):
    """y = Linear(RMSNorm(x)) keeping only x and the (…, 1) statistics for backward; the
    normalised input is recomputed. x float (…, d) -> y (…, out) in the weight's dtype.

    With cos, sin given ((N, Dh) or (B, N, Dh) float32), y is a fused (B, N, 3·H·Dh) q/k/v
    projection and RoPE is applied in place to its q and k thirds, so q, k and v stay views
    of one buffer (the only copy SDPA keeps for backward); backward rotates the gradient by
    −angle (distillation §4).
    """

    @staticmethod
    def forward(ctx, x, norm_weight, weight, bias, eps, cos, sin, num_heads):  # noqa: ANN001, ANN205
        rstd = _rms_stats(x, eps)  # (..., 1)
        normed = (x * rstd * norm_weight).to(weight.dtype)  # (..., d)
        y = F.linear(normed, weight, bias)  # (..., out)
        if cos is not None:
            _rotate_qk_(y, cos, sin, num_heads)
        ctx.save_for_backward(x, rstd, norm_weight, weight, cos, sin)
        ctx.has_bias, ctx.num_heads = bias is not None, num_heads
        return y

    @staticmethod
    def backward(ctx, grad_y):  # noqa: ANN001, ANN205
        x, rstd, norm_weight, weight, cos, sin = ctx.saved_tensors
        converted = grad_y.to(weight.dtype, memory_format=torch.contiguous_format)
        if cos is not None:
            # the incoming gradient belongs to autograd: rotate a copy
            converted = converted.clone() if converted is grad_y else converted
            _rotate_qk_(converted, cos, -sin, ctx.num_heads)
        grad_y = converted
        normed = (x * rstd * norm_weight).to(weight.dtype)
        grad_weight = _flat(grad_y).t().mm(_flat(normed))  # (out, d)
        grad_bias = _flat(grad_y).sum(0) if ctx.has_bias else None
        del normed
        grad_normed = grad_y.matmul(weight)  # (..., d)
        grad_x, grad_norm_weight = _rms_norm_backward(grad_normed, x, rstd, norm_weight)
        return grad_x.to(x.dtype), grad_norm_weight, grad_weight, grad_bias, None, None, None, None


def _rotate_qk_(qkv: Tensor, cos: Tensor, sin: Tensor, num_heads: int) -> None:
    """qk ← qk·cos + rotate_half(qk)·sin in place on the first two thirds of qkv (B, N, 3d)."""
    batch, length, _ = qkv.shape
    qk = qkv.view(batch, length, 3, num_heads, -1)[:, :, :2]  # (B, N, 2, H, Dh)
    cos = cos.to(qkv.dtype).unsqueeze(-2).unsqueeze(-2)  # (N, 1, 1, Dh) or (B, N, 1, 1, Dh)
    sin = sin.to(qkv.dtype).unsqueeze(-2).unsqueeze(-2)
    rotated = rotate_half(qk).mul_(sin)  # (B, N, 2, H, Dh)
    qk.mul_(cos).add_(rotated)


class _DropoutLinear(torch.autograd.Function):
    """y = Dropout(Linear(Dropout(a))) keeping a and two bool masks; the dropped input is
    recomputed in backward (distillation §4: dropout on the attention output before o_proj
    and on the block output). With s = 1/(1 − p): y = m_out ⊙ (s²·W·(m_in ⊙ a) + s·b), the
    scales applied to the weight and bias. a (…, d_in) -> y (…, d_out) in the weight's dtype.
    """

    @staticmethod
    def forward(ctx, a, weight, bias, p, training):  # noqa: ANN001, ANN205
        active = training and p > 0
        scale = 1.0 / (1.0 - p) if active else 1.0
        drop_in = _drop_mask(a, p) if active else None
        bias_scaled = None if bias is None else bias * scale
        y = F.linear(_masked(a, drop_in), weight * scale**2, bias_scaled)  # (..., d_out)
        drop_out = _drop_mask(y, p) if active else None
        if drop_out is not None:
            y.masked_fill_(drop_out, 0)
        ctx.save_for_backward(a, weight, drop_in, drop_out)
        ctx.scale = scale
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):  # noqa: ANN001, ANN205
        a, weight, drop_in, drop_out = ctx.saved_tensors
        gain = ctx.scale**2
        grad_y = _masked(grad_y.to(weight.dtype), drop_out)
        grad_weight = _flat(grad_y).t().mm(_flat(_masked(a, drop_in))).mul_(gain)
        grad_bias = _flat(grad_y).sum(0).mul_(ctx.scale) if ctx.has_bias else None
        grad_a = grad_y.matmul(weight * gain)
        if drop_in is not None:
            grad_a.masked_fill_(drop_in, 0)
        return grad_a.to(a.dtype), grad_weight, grad_bias, None, None


_ACT_FORWARD = {"gelu": F.gelu, "silu": F.silu}


def _act_backward_into(activation: str, grad: Tensor, gate: Tensor, out: Tensor) -> None:
    """out ← grad ⊙ act′(gate) (aten's own activation backward, any device)."""
    if activation == "gelu":
        torch.ops.aten.gelu_backward.grad_input(grad, gate, grad_input=out)
    else:
        torch.ops.aten.silu_backward.grad_input(grad, gate, grad_input=out)


# Rows per MLP chunk = this / F: 8 MiB fp32 (…, F) temporaries. Below glibc's largest mmap
# threshold (32 MiB), so they are reused from the heap instead of page-faulting fresh maps:
# 60.4 -> 51.9 s per step at the published LFP encoder size with 32 MiB chunks before.
_CHUNK_ELEMENTS = 1 << 21


def _add_product(accumulator: Tensor, a: Tensor, b: Tensor) -> None:
    """accumulator += a @ b, accumulating in the accumulator's (float32) precision."""
    if accumulator.dtype == a.dtype:
        accumulator.addmm_(a, b)
    else:
        accumulator.add_(a.mm(b))


class _NormGatedMLP(torch.autograd.Function):
    """y = down(Dropout(act(gate(x̂)) ⊙ up(x̂))), x̂ = RMSNorm(x) (distillation §4).

    gate and up run as one matmul into one (M, 2F) buffer. Saved for backward: x, the
    (M, 1) statistics, the gate/up pre-activations and the bool dropout mask; x̂, act(gate)
    and the hidden product are recomputed. Everything after the gate/up matmul runs over
    row chunks, so the (…, F) temporaries of forward and backward are chunk-sized: per layer
    about 2.25 F-sized tensors stay alive instead of seven, and the backward peak adds a few
    chunks rather than five more. x (…, d) float -> y (…, d) in the weights' dtype.
    """

    @staticmethod
    def forward(
        ctx,
        x,
        norm_weight,
        gate_up_weight,
        gate_up_bias,
        down_weight,
        down_bias,
        eps,
        activation,
        p,
        training,
    ):  # noqa: ANN001, ANN205
        dtype = gate_up_weight.dtype
        x2 = _flat(x)  # (M, d)
        rstd = _rms_stats(x2, eps)  # (M, 1)
        normed = (x2 * rstd * norm_weight).to(dtype)  # (M, d)
        gate_up = F.linear(normed, gate_up_weight, gate_up_bias)  # (M, 2F)
        del normed
        rows, hidden_size = gate_up.shape[0], gate_up.shape[1] // 2
        active = training and p > 0
        scale = 1.0 / (1.0 - p) if active else 1.0
        drop = _drop_mask(gate_up[:, :hidden_size], p) if active else None  # (M, F)
        y = torch.empty(rows, down_weight.shape[0], dtype=dtype, device=x.device)  # (M, d)
        drop_out = _drop_mask(y, p) if active else None  # (M, d)
        # y = m_out ⊙ (s²·W_down·(m ⊙ h) + s·b_down), s = 1/(1 − p)
        down_scaled = down_weight * scale**2
        down_bias_scaled = None if down_bias is None else down_bias * scale
        step = max(1, _CHUNK_ELEMENTS // hidden_size)
        for start in range(0, rows, step):
            chunk = slice(start, start + step)
            gate, up = gate_up[chunk].chunk(2, dim=-1)  # (c, F)
            hidden = _ACT_FORWARD[activation](gate).mul_(up)
            if drop is not None:
                hidden.masked_fill_(drop[chunk], 0)
            y[chunk] = F.linear(hidden, down_scaled, down_bias_scaled)
        if drop_out is not None:
            y.masked_fill_(drop_out, 0)
        ctx.save_for_backward(
            x2, rstd, norm_weight, gate_up, gate_up_weight, down_weight, drop, drop_out
        )
        ctx.activation, ctx.scale, ctx.step = activation, scale, step
        ctx.has_bias = (gate_up_bias is not None, down_bias is not None)
        return y.view(*x.shape[:-1], -1)

    @staticmethod
    def backward(ctx, grad_y):  # noqa: ANN001, ANN205
        x2, rstd, norm_weight, gate_up, gate_up_weight, down_weight, drop, drop_out = (
            ctx.saved_tensors
        )
        dtype = gate_up.dtype
        shape = grad_y.shape
        grad_y = _masked(_flat(grad_y.to(dtype)), drop_out)  # (M, d)
        gain = ctx.scale**2
        down_scaled = down_weight * gain
        hidden_size = gate_up.shape[1] // 2
        accumulate = torch.promote_types(dtype, torch.float32)
        grad_down_weight = torch.zeros(down_weight.shape, dtype=accumulate, device=x2.device)
        grad_gate_up_weight = torch.zeros(gate_up_weight.shape, dtype=accumulate, device=x2.device)
        grad_gate_up_bias = torch.zeros(gate_up.shape[1], dtype=accumulate, device=x2.device)
        grad_norm_weight = torch.zeros_like(norm_weight)
        grad_x = torch.empty_like(x2)  # (M, d)
        for start in range(0, x2.shape[0], ctx.step):
            chunk = slice(start, start + ctx.step)
            grad_out = grad_y[chunk]  # (c, d)
            gate, up = gate_up[chunk].chunk(2, dim=-1)  # (c, F)
            activated = _ACT_FORWARD[ctx.activation](gate)
            grad_hidden = grad_out.mm(down_scaled)  # (c, F)
            if drop is not None:
                grad_hidden.masked_fill_(drop[chunk], 0)
            grad_gate_up = torch.empty_like(gate_up[chunk])  # (c, 2F)
            torch.mul(grad_hidden, activated, out=grad_gate_up[:, hidden_size:])
            hidden = activated.mul_(up)
            if drop is not None:
                hidden.masked_fill_(drop[chunk], 0)
            _add_product(grad_down_weight, grad_out.t(), hidden)  # (d, F), times s² below
            del hidden, activated
            grad_hidden.mul_(up)
            _act_backward_into(ctx.activation, grad_hidden, gate, grad_gate_up[:, :hidden_size])
            del grad_hidden
            normed = (x2[chunk] * rstd[chunk] * norm_weight).to(dtype)  # (c, d)
            _add_product(grad_gate_up_weight, grad_gate_up.t(), normed)  # (2F, d)
            grad_gate_up_bias.add_(grad_gate_up.sum(0))
            grad_normed = grad_gate_up.mm(gate_up_weight)  # (c, d)
            grad_x_chunk, grad_norm_chunk = _rms_norm_backward(
                grad_normed, x2[chunk], rstd[chunk], norm_weight
            )
            grad_x[chunk] = grad_x_chunk
            grad_norm_weight.add_(grad_norm_chunk)
        grad_down_weight.mul_(gain)
        grad_down_bias = grad_y.sum(0, dtype=accumulate) * ctx.scale if ctx.has_bias[1] else None
        return (
            grad_x.view(shape),
            grad_norm_weight,
            grad_gate_up_weight.to(dtype),
            grad_gate_up_bias.to(dtype) if ctx.has_bias[0] else None,
            grad_down_weight.to(dtype),
            None if grad_down_bias is None else grad_down_bias.to(dtype),
            None,
            None,
            None,
            None,
        )


def _cast(tensor: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if tensor is None else tensor.to(dtype)


class Attention(nn.Module):
    """Multi-head bidirectional self-attention with RoPE (distillation §4).

    x (B, N, d) -> (B, N, d); the attention output is dropped out before o_proj and the
    block's residual dropout is applied to the o_proj output here (one fused function).
    `forward` takes the block input and applies the block's pre-norm itself (fused with
    qkv_proj).
    """

    def __init__(self, *, config: TransformerConfig) -> None:
        super().__init__()
        d = config.d_model
        if d % config.num_heads != 0:
            raise ValueError(f"d_model={d} must be divisible by num_heads={config.num_heads}")
        self.num_heads = config.num_heads
        self.qkv_proj = nn.Linear(d, 3 * d)
        self.o_proj = nn.Linear(d, d)
        self.rotary_emb = RotaryEmbedding(
            d // config.num_heads, base=config.rope_base, max_positions=config.max_positions
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, norm: RMSNorm, positions: Tensor, key_valid: Tensor | None = None
    ) -> Tensor:
        """x (B, N, d) block input, norm the block's pre-norm -> Dropout(o_proj(…)) (B, N, d)."""
        batch, length, d = x.shape
        dtype = _compute_dtype(x)
        cos, sin = self.rotary_emb.cos_sin(positions)  # (N, Dh) or (B, N, Dh)
        weight, bias = self.qkv_proj.weight.to(dtype), _cast(self.qkv_proj.bias, dtype)
        o_weight, o_bias = self.o_proj.weight.to(dtype), _cast(self.o_proj.bias, dtype)
        with torch.autocast(x.device.type, enabled=False):
            qkv = _NormLinear.apply(
                x, norm.weight, weight, bias, norm.eps, cos, sin, self.num_heads
            )  # (B, N, 3d), RoPE applied to q and k
            q, k, v = qkv.view(batch, length, 3, self.num_heads, -1).unbind(2)  # (B, N, H, Dh)
            mask = None if key_valid is None else key_valid[:, None, None, :]  # (B, 1, 1, N)
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
            )  # (B, H, N, Dh)
            out = out.transpose(1, 2).reshape(batch, length, d)  # a view for the CPU kernels
            return _DropoutLinear.apply(out, o_weight, o_bias, self.dropout.p, self.training)


class GatedMLP(nn.Module):
    """down(Dropout(act(gate(x)) ⊙ up(x))), then dropout (distillation §4). (B, N, d).

    `forward` takes the block's residual stream and applies the block's pre-norm itself.
    """

    def __init__(self, *, config: TransformerConfig) -> None:
        super().__init__()
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {config.activation!r}")
        d, hidden = config.d_model, int(config.mlp_ratio * config.d_model)
        self.activation = config.activation
        self.gate_proj = nn.Linear(d, hidden)
        self.up_proj = nn.Linear(d, hidden)
        self.down_proj = nn.Linear(hidden, d)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, norm: RMSNorm) -> Tensor:
        dtype = _compute_dtype(x)
        gate_up_weight = torch.cat((self.gate_proj.weight, self.up_proj.weight)).to(dtype)
        gate_up_bias = torch.cat((self.gate_proj.bias, self.up_proj.bias)).to(dtype)
        down_weight, down_bias = self.down_proj.weight.to(dtype), self.down_proj.bias.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            y = _NormGatedMLP.apply(
                x,
                norm.weight,
                gate_up_weight,
                gate_up_bias,
                down_weight,
                down_bias,
                norm.eps,
                self.activation,
                self.dropout.p,
                self.training,
            )
        return y


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Dropout(Attention(RMSNorm(x))), then x + GatedMLP(RMSNorm(x))."""

    def __init__(self, *, config: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(config.d_model, eps=config.norm_eps)
        self.attention = Attention(config=config)
        self.norm2 = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mlp = GatedMLP(config=config)

    def forward(self, x: Tensor, positions: Tensor, key_valid: Tensor | None = None) -> Tensor:
        x = x + self.attention(x, self.norm1, positions, key_valid)
        return x + self.mlp(x, self.norm2)


class TransformerEncoder(nn.Module):
    """Stack of pre-norm blocks and a final RMSNorm (distillation §4)."""

    def __init__(self, *, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(
            TransformerBlock(config=config) for _ in range(config.num_layers)
        )
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)

    def forward(self, x: Tensor, positions: Tensor, valid: Tensor | None = None) -> Tensor:
        """x (B, N, d) tokens; positions (N,) or (B, N) int64 time ids; valid (B, N) bool
        (False = padding token: never attended to as a key; its output is unspecified);
        returns (B, N, d) after the final RMSNorm."""
        if positions.numel() and int(positions.max()) >= self.config.max_positions:
            raise ValueError(
                f"time ids reach {int(positions.max())} but the RoPE cache holds "
                f"{self.config.max_positions} positions; raise TransformerConfig.max_positions"
            )
        for layer in self.layers:
            x = layer(x, positions, valid)
        return self.norm(x)
