"""The LDNS residual block as one autograd function with a hand-written backward (CPU speed).

Autograd on the plain composition keeps about eleven (B, T, C)-sized tensors per block and
allocates many more temporaries in backward. `fused_block` keeps the block input, the S4
output, the MLP pre-activation (2C rows) and, in gated (denoiser) blocks, the MLP output; it
recomputes the rest (normalised inputs, GELU outputs, the residual between the two mixers) in
backward. Every large tensor it owns, saved or scratch, comes from the buffer pool
(buffer_pool.py) and goes back to it, so a training step reuses memory instead of
page-faulting fresh pages; only the block output and the input gradient are new tensors.
The math is the plain composition (LDNS §2, §7); tests check values and gradients against
it, with and without the pool.

Layout: channel-major, (C, B, T), with the modulation rows (shift, scale, gain, bias, gate)
as (C, B, 1) or (C, 1, 1): the normalisation then reduces over the contiguous time axis, the
1×1 maps are plain (O, I) x (I, B·T) matmuls and the Toeplitz convolution needs no transposes.
Models move to this layout once after their input map and back once before their output map.
The statistics helpers also serve the channels-last (B, T, C) reference path.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from neuralcli.models.layers.buffer_pool import POOL
from neuralcli.models.layers.s4d import toeplitz_matrix, toeplitz_taps_grad

NORM_EPS = 1e-5  # nn.InstanceNorm1d default


def instance_norm_stats(x: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and 1/std over the time axis `dim`, kept as size 1.

    x (B, T, C) with dim 1 -> (B, 1, C) twice; x (C, B, T) with dim −1 -> (C, B, 1) twice.
    """
    # Two passes (mean, then the norm of the centred input) are several times faster on CPU
    # than torch.var_mean's Welford reduction over a middle dimension.
    mean = x.mean(dim=dim, keepdim=True)
    if torch.is_grad_enabled() and x.requires_grad:  # the plain, autograd-traced path
        norm = torch.linalg.vector_norm(x - mean, dim=dim, keepdim=True)
    else:  # inside the fused functions: pooled scratch
        centred = torch.sub(x, mean, out=_scratch(x.shape, x))
        norm = torch.linalg.vector_norm(centred, dim=dim, keepdim=True)
        POOL.give(centred)
    return mean, torch.rsqrt(norm.square() / x.shape[dim] + NORM_EPS)


def _scratch(
    shape: torch.Size | tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """An uninitialised tensor from the pool, with like's device and dtype unless given."""
    return POOL.take(tuple(shape), dtype=dtype or like.dtype, device=like.device)


def modulate(
    x: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """InstanceNorm(x)·(1 + scale) + shift as one affine pass, in x's layout and shape."""
    gain = rstd * (1.0 + scale)  # (B, 1, C) or (C, B, 1)
    return torch.addcmul(shift - mean * gain, x, gain, out=out)


def modulate_backward(
    grad_h: torch.Tensor,
    x: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    dim: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of `modulate` (through the statistics over time axis `dim`) w.r.t. x, shift, scale.

    With x̂ = (x − μ)·r, A = r·(1 + scale), S1 = Σ_t dh and S2 = Σ_t dh·x̂:
    dx = A·dh − (A/T)·(S1 + x̂·S2), dshift = S1, dscale = S2 (summed to their shapes).
    Shapes as in `instance_norm_stats`: statistics have size 1 along `dim`. grad_h is
    overwritten by grad_x (one activation-sized buffer less at the backward peak).
    """
    length = x.shape[dim]
    s1 = grad_h.sum(dim=dim, keepdim=True)  # (B, 1, C) or (C, B, 1)
    product = torch.mul(grad_h, x, out=_scratch(x.shape, grad_h))
    s2 = rstd * (product.sum(dim=dim, keepdim=True) - mean * s1)
    POOL.give(product)
    gain = rstd * (1.0 + scale)
    coef_x = -gain * rstd * s2 / length
    grad_x = grad_h.mul_(gain).addcmul_(x, coef_x)  # as x
    grad_x.add_(-gain * s1 / length - mean * coef_x)
    return grad_x, s1.sum_to_size(shift.shape), s2.sum_to_size(scale.shape)


def _owned(ctx, name: str) -> torch.Tensor:
    """Take a pooled tensor saved on ctx; it goes back to the pool after this backward."""
    tensor = getattr(ctx, name)
    if tensor is None:
        raise RuntimeError(
            "the fused LDNS blocks support one backward pass per forward pass: their saved "
            "buffers are reused after the first (do not backward twice with retain_graph=True)"
        )
    if POOL.pools(tensor.numel(), tensor.dtype, tensor.device):
        setattr(ctx, name, None)  # pooled: reused once this backward gives it back
    return tensor


def _sum_to(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`sum_to_size` that never returns a view of a buffer about to be reused."""
    if tuple(tensor.shape) == tuple(shape):
        return tensor.clone()
    return tensor.sum_to_size(shape)


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The matmul dtype: autocast's for x's device when autocast is on, else x's."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


class TimeMixer(NamedTuple):
    """Time-mixer inputs of `fused_block`: (C, B, 1) or (C, 1, 1) rows and the S4 taps."""

    shift: torch.Tensor
    scale: torch.Tensor
    taps: torch.Tensor  # (C, 2T-1) Toeplitz taps of the S4 convolution (S4D.taps)
    gain: torch.Tensor  # adaLN gate (denoiser) or the depthwise post-GELU scale (AE)
    bias: torch.Tensor | None  # the depthwise post-GELU bias (AE) or None


class ChannelMixer(NamedTuple):
    """Channel-mixer inputs of `fused_block`: rows as in TimeMixer, MLP weights (O, I)."""

    shift: torch.Tensor
    scale: torch.Tensor
    w1: torch.Tensor  # (2C, C)
    b1: torch.Tensor | None  # (2C,)
    w2: torch.Tensor  # (C, 2C)
    b2: torch.Tensor | None  # (C,)
    gate: torch.Tensor | None  # adaLN gate (denoiser) or None (AE)


def fused_block(
    x: torch.Tensor,
    time_mixer: TimeMixer,
    channel_mixer: ChannelMixer,
) -> torch.Tensor:
    """One LDNS residual block on x (C, B, T) -> (C, B, T) float32 (LDNS §2, §7).

    x2  = x + gain·GELU(S4(InstanceNorm(x)·(1 + scale_t) + shift_t)) (+ bias)
    out = x2 + gate·Linear2(GELU(Linear1(InstanceNorm(x2)·(1 + scale_c) + shift_c)))
    with no gate (gate = 1) when `channel_mixer.gate` is None.
    """
    tensors = (x, *time_mixer, *channel_mixer)
    record = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return FusedBlock.apply(record, *tensors)


def _residual(x, activation, gain, bias, out):
    """out = x + gain·activation (+ bias), written into `out`."""
    torch.addcmul(x, activation, gain, out=out)
    if bias is not None:
        out.add_(bias)
    return out


def _pointwise(
    weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor
) -> torch.Tensor:
    """weight (O, I) @ x (I, N) (+ bias (O,)) -> out (O, N): a 1×1 map over channel-major rows."""
    if bias is None:
        return torch.mm(weight, x, out=out)
    return torch.addmm(bias[:, None], weight, x, out=out)


def _cast(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(dtype)


class FusedBlock(torch.autograd.Function):
    """Autograd function behind `fused_block`; inputs after `record` in the order
    x, TimeMixer fields, ChannelMixer fields.

    Saved: x, the statistics, y = S4 output and u = MLP pre-activation (both pooled), and in
    gated blocks m = MLP output (pooled; it gives the gate's gradient without a third
    (C, 2C) x (2C, B·T) matmul in backward). Matmuls of the MLP run in autocast's dtype when
    autocast is on (bf16 on CPU), everything else in float32 (LDNS §3.2: the S4 convolution
    runs in fp32).
    """

    @staticmethod
    def forward(ctx, record, x, *inputs):
        shift_t, scale_t, taps, gain, bias = inputs[:5]
        shift_c, scale_c, w1, b1, w2, b2, gate = inputs[5:]
        channels, length, rows = x.shape[0], x.shape[-1], x[0].numel()
        compute = _compute_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            # Time mixer: x2 = x + gain·GELU(y), y = S4(modulated InstanceNorm(x)).
            mean_t, rstd_t = instance_norm_stats(x, dim=-1)  # (C, B, 1) each
            h = modulate(x, mean_t, rstd_t, shift_t, scale_t, out=_scratch(x.shape, x))
            toeplitz = toeplitz_matrix(taps, length, out=_scratch((channels, length, length), x))
            y = torch.bmm(h, toeplitz.transpose(1, 2), out=_scratch(x.shape, x))  # (C, B, T)
            POOL.give(toeplitz)
            x2 = _residual(x, torch.ops.aten.gelu.out(y, out=h), gain, bias, _scratch(x.shape, x))
            # Channel mixer: out = x2 + gate·m, m = MLP(modulated InstanceNorm(x2)).
            mean_c, rstd_c = instance_norm_stats(x2, dim=-1)  # (C, B, 1) each
            modulate(x2, mean_c, rstd_c, shift_c, scale_c, out=h)
            u = _pointwise(
                w1.to(compute),
                h.view(channels, rows).to(compute),
                _cast(b1, compute),
                _scratch((2 * channels, rows), x, compute),
            )  # (2C, B·T)
            POOL.give(h)
            activation = torch.ops.aten.gelu.out(u, out=_scratch(u.shape, u))  # (2C, B·T)
            m = _pointwise(
                w2.to(compute), activation, _cast(b2, compute), _scratch((channels, rows), u)
            ).view_as(x)  # (C, B, T)
            POOL.give(activation)
            out = x2 + m if gate is None else torch.addcmul(x2, gate, m)  # (C, B, T), new
            POOL.give(x2)
        if gate is None:
            POOL.give(m)
            m = None
        if record:
            ctx.save_for_backward(x, mean_t, rstd_t, mean_c, rstd_c, *inputs)
            ctx.y, ctx.u, ctx.m = y, u, m
        else:
            POOL.give(y, u, *([] if m is None else [m]))
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, mean_t, rstd_t, mean_c, rstd_c, *inputs = ctx.saved_tensors
        shift_t, scale_t, taps, gain, bias = inputs[:5]
        shift_c, scale_c, w1, b1, w2, b2, gate = inputs[5:]
        y, u = _owned(ctx, "y"), _owned(ctx, "u")
        m = None if gate is None else _owned(ctx, "m")
        compute = u.dtype
        channels, length, rows = x.shape[0], x.shape[-1], x[0].numel()
        grad_out = grad_out.contiguous()  # (C, B, T)

        # Channel mixer: the MLP part first, while no (C, B, T) scratch is live.
        activation = torch.ops.aten.gelu.out(u, out=_scratch(u.shape, u))  # GELU(u)
        grad_gate = None
        if m is None:
            grad_m = grad_out.view(channels, rows).to(compute)  # (C, B·T)
        else:
            if m.dtype == grad_out.dtype:
                grad_gate = _sum_to(m.mul_(grad_out), gate.shape)
            else:
                grad_gate = (grad_out * m).sum_to_size(gate.shape)
            grad_m = torch.mul(grad_out, gate, out=m).view(channels, rows)  # (C, B·T)
        grad_b2 = None if b2 is None else grad_m.sum(1).to(b2.dtype)
        grad_w2 = (grad_m @ activation.t()).to(w2.dtype)  # (C, 2C)
        # dL/dGELU(u), then dL/du in place, in GELU(u)'s buffer (grad_w2 was its last use):
        # two (2C, B·T) buffers live here instead of three.
        grad_act = torch.mm(w2.to(compute).t(), grad_m, out=activation)  # (2C, B·T)
        del grad_m
        if m is not None:
            POOL.give(m)
        grad_u = torch.ops.aten.gelu_backward.grad_input(grad_act, u, grad_input=grad_act)
        POOL.give(u)
        # Rebuild the residual between the mixers; keep GELU(y) for the time mixer.
        gelu_y = torch.ops.aten.gelu.out(y, out=_scratch(x.shape, x))  # (C, B, T)
        x2 = _residual(x, gelu_y, gain, bias, _scratch(x.shape, x))  # (C, B, T)
        grad_b1 = None if b1 is None else grad_u.sum(1).to(b1.dtype)
        h = modulate(x2, mean_c, rstd_c, shift_c, scale_c, out=_scratch(x.shape, x))  # rebuilt
        grad_w1 = (grad_u @ h.view(channels, rows).to(compute).t()).to(w1.dtype)  # (2C, C)
        POOL.give(h)
        w1_t = w1.to(compute).t()
        grad_h = torch.mm(w1_t, grad_u, out=_scratch((channels, rows), u)).view_as(x)
        POOL.give(grad_u)
        if grad_h.dtype != x.dtype:
            grad_h_compute, grad_h = grad_h, grad_h.to(x.dtype)
            POOL.give(grad_h_compute)
        grad_x2, grad_shift_c, grad_scale_c = modulate_backward(
            grad_h, x2, mean_c, rstd_c, shift_c, scale_c, dim=-1
        )  # (C, B, T), in grad_h's buffer
        grad_x2.add_(grad_out)  # the channel mixer's residual path
        POOL.give(x2)

        # Time mixer, with dL/dx2 flowing in.
        grad_gain = _sum_to(gelu_y.mul_(grad_x2), gain.shape)
        grad_bias = None if bias is None else _sum_to(grad_x2, bias.shape)
        torch.mul(grad_x2, gain, out=gelu_y)  # dL/dGELU(y)
        grad_y = torch.ops.aten.gelu_backward.grad_input(gelu_y, y, grad_input=y)  # y's buffer
        h = modulate(x, mean_t, rstd_t, shift_t, scale_t, out=gelu_y)  # rebuilt
        grad_toeplitz = torch.bmm(
            grad_y.transpose(1, 2), h, out=_scratch((channels, length, length), x)
        )  # (C, T, T)
        grad_taps = toeplitz_taps_grad(grad_toeplitz, taps.shape)  # (C, 2T-1)
        toeplitz = toeplitz_matrix(taps, length, out=grad_toeplitz)  # (C, T, T), same buffer
        grad_x = torch.bmm(grad_y, toeplitz)  # (C, B, T): returned, so a new tensor
        POOL.give(toeplitz, grad_y, h)
        grad_x, grad_shift_t, grad_scale_t = modulate_backward(
            grad_x, x, mean_t, rstd_t, shift_t, scale_t, dim=-1
        )
        grad_x.add_(grad_x2)  # the time mixer's residual path
        POOL.give(grad_x2)
        return (
            None, grad_x,
            grad_shift_t, grad_scale_t, grad_taps, grad_gain, grad_bias,
            grad_shift_c, grad_scale_c, grad_w1, grad_b1, grad_w2, grad_b2, grad_gate,
        )  # fmt: skip


def to_channel_major(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (C, B, T) contiguous via the fast 2-D transpose."""
    batch, length, channels = x.shape
    return x.reshape(batch * length, channels).t().contiguous().view(channels, batch, length)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(C, B, T) -> (B, T, C) contiguous via the fast 2-D transpose."""
    channels, batch, length = x.shape
    return x.reshape(channels, batch * length).t().contiguous().view(batch, length, channels)
