"""Fused pieces of the LDNS residual blocks with hand-written backward passes (CPU speed).

Autograd on the plain composition keeps about eleven (B, T, C)-sized tensors per block and
allocates many more temporaries in backward. These functions keep only the block input, the
S4 output, the residual between the mixers and the MLP pre-activation, and recompute the
rest (normalised inputs, GELU outputs, the gated MLP output) in backward. The math is the
plain composition (LDNS §2, §7); tests check values and gradients against it.

Layout: the residual functions are channel-major, (C, B, T), with `shift`, `scale` and `gate`
as (C, B, 1) or (C, 1, 1): the normalisation then reduces over the contiguous time axis, the
1×1 maps are plain (O, I) x (I, B·T) matmuls and the Toeplitz convolution needs no transposes.
Models move to this layout once after their input map and back once before their output map.
The statistics helpers also serve the channels-last (B, T, C) reference path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuralcli.models.layers.s4d import toeplitz_matrix, toeplitz_taps_grad

NORM_EPS = 1e-5  # nn.InstanceNorm1d default


def instance_norm_stats(x: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and 1/std over the time axis `dim`, kept as size 1.

    x (B, T, C) with dim 1 -> (B, 1, C) twice; x (C, B, T) with dim −1 -> (C, B, 1) twice.
    """
    # Two passes (mean, then the norm of the centred input) are several times faster on CPU
    # than torch.var_mean's Welford reduction over a middle dimension.
    mean = x.mean(dim=dim, keepdim=True)
    norm = torch.linalg.vector_norm(x - mean, dim=dim, keepdim=True)
    return mean, torch.rsqrt(norm.square() / x.shape[dim] + NORM_EPS)


def modulate(
    x: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
) -> torch.Tensor:
    """InstanceNorm(x)·(1 + scale) + shift as one affine pass, in x's layout and shape."""
    gain = rstd * (1.0 + scale)  # (B, 1, C) or (C, B, 1)
    return torch.addcmul(shift - mean * gain, x, gain)


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
    s2 = rstd * ((grad_h * x).sum(dim=dim, keepdim=True) - mean * s1)
    gain = rstd * (1.0 + scale)
    coef_x = -gain * rstd * s2 / length
    grad_x = grad_h.mul_(gain).addcmul_(x, coef_x)  # as x
    grad_x.add_(-gain * s1 / length - mean * coef_x)
    return grad_x, s1.sum_to_size(shift.shape), s2.sum_to_size(scale.shape)


class NormS4Conv(torch.autograd.Function):
    """y = S4 conv of InstanceNorm(x)·(1 + scale) + shift, with Toeplitz taps (H, 2L−1).

    Channel-major: x (C, B, T), shift and scale (C, B, 1) or (C, 1, 1), y (C, B, T). In this
    layout the normalisation reduces over the contiguous time axis and the convolution is one
    matmul batched over channels with no transposes. Keeps x, the statistics and the taps; the
    normalised input and the Toeplitz matrix (a cheap gather) are rebuilt in backward, which
    keeps the peak memory of the training step down. All in float32 (LDNS §3.2: the
    convolution runs in fp32).
    """

    @staticmethod
    def forward(ctx, x, shift, scale, taps):
        with torch.autocast(device_type=x.device.type, enabled=False):
            mean, rstd = instance_norm_stats(x, dim=-1)  # (C, B, 1) each
            h = modulate(x, mean, rstd, shift, scale)  # (C, B, T)
            toeplitz = toeplitz_matrix(taps, x.shape[-1])  # (C, T, T)
            y = torch.bmm(h, toeplitz.transpose(1, 2))  # (C, B, T)
        ctx.save_for_backward(x, mean, rstd, shift, scale, taps)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, mean, rstd, shift, scale, taps = ctx.saved_tensors
        length = x.shape[-1]
        grad_y = grad_y.contiguous()  # (C, B, T)
        h = modulate(x, mean, rstd, shift, scale)  # (C, B, T)
        grad_taps = toeplitz_taps_grad(torch.bmm(grad_y.transpose(1, 2), h), taps.shape)
        del h
        toeplitz = toeplitz_matrix(taps, length)  # (C, T, T)
        grad_h = torch.bmm(grad_y, toeplitz)  # (C, B, T)
        del toeplitz
        grad_x, grad_shift, grad_scale = modulate_backward(
            grad_h, x, mean, rstd, shift, scale, dim=-1
        )
        return grad_x, grad_shift, grad_scale, grad_taps


class GeluResidual(torch.autograd.Function):
    """out = x + gain·GELU(y) (+ bias): the gated (denoiser) or depthwise (AE) residual.

    Any layout: gain and bias broadcast against x. Keeps y and gain; GELU(y) is recomputed
    in backward.
    """

    @staticmethod
    def forward(ctx, x, y, gain, bias):
        out = torch.addcmul(x, F.gelu(y), gain)  # same shape as x
        if bias is not None:
            out.add_(bias)
        ctx.save_for_backward(y, gain)
        ctx.bias_shape = None if bias is None else bias.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        y, gain = ctx.saved_tensors
        grad_gain = (grad_out * F.gelu(y)).sum_to_size(gain.shape)
        grad_y = torch.ops.aten.gelu_backward(grad_out * gain, y)
        grad_bias = None if ctx.bias_shape is None else grad_out.sum_to_size(ctx.bias_shape)
        return grad_out, grad_y, grad_gain, grad_bias


def _pointwise(weight: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """weight (O, I) @ x (I, N) (+ bias (O,)) -> (O, N): a 1×1 map over channel-major rows."""
    if bias is None:
        return torch.mm(weight, x)
    return torch.addmm(bias[:, None], weight, x)


class NormMLPResidual(torch.autograd.Function):
    """out = x + gate·(Linear2(GELU(Linear1(InstanceNorm(x)·(1 + scale) + shift)))).

    Channel-major: x (C, B, T), shift, scale and gate (C, B, 1) or (C, 1, 1), so each linear
    map is one (O, I) x (I, B·T) matmul. `gate` None means no gate (AE), biases may be None.
    Keeps x, the statistics and the MLP pre-activation u; recomputes the normalised input,
    GELU(u) and (gated only) the MLP output in backward: one extra (C, 2C) x (2C, B·T) matmul
    buys one (C, B, T) tensor less per block. Matmuls run in u's dtype, so bf16 under autocast.
    """

    @staticmethod
    def forward(ctx, x, shift, scale, w1, b1, w2, b2, gate):
        channels = x.shape[0]
        mean, rstd = instance_norm_stats(x, dim=-1)  # (C, B, 1) each
        h = modulate(x, mean, rstd, shift, scale).view(channels, -1)  # (C, B·T)
        u = _pointwise(w1, h, b1)  # (2C, B·T)
        del h
        m = _pointwise(w2, F.gelu(u), b2).view_as(x)  # (C, B, T)
        out = x + m if gate is None else torch.addcmul(x, gate, m)  # (C, B, T)
        ctx.save_for_backward(x, mean, rstd, shift, scale, w1, w2, b2, u, gate)
        ctx.has_b1 = b1 is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, mean, rstd, shift, scale, w1, w2, b2, u, gate = ctx.saved_tensors
        compute = u.dtype
        channels = x.shape[0]
        grad_out = grad_out.contiguous()  # (C, B, T)
        gelu_u = F.gelu(u)  # (2C, B·T)
        grad_gate = None
        if gate is None:
            grad_m = grad_out
        else:
            m = _pointwise(w2.to(compute), gelu_u, None if b2 is None else b2.to(compute))
            grad_gate = (grad_out * m.view_as(grad_out)).sum_to_size(gate.shape)
            del m
            grad_m = grad_out * gate
        grad_m = grad_m.to(compute).reshape(channels, -1)  # (C, B·T)
        grad_b2 = grad_m.sum(1).to(b2.dtype) if b2 is not None else None
        grad_w2 = (grad_m @ gelu_u.t()).to(w2.dtype)  # (C, 2C)
        del gelu_u
        grad_u = torch.ops.aten.gelu_backward(w2.to(compute).t() @ grad_m, u)  # (2C, B·T)
        del grad_m
        grad_b1 = grad_u.sum(1).to(w1.dtype) if ctx.has_b1 else None
        h = modulate(x, mean, rstd, shift, scale).view(channels, -1)  # (C, B·T)
        grad_w1 = (grad_u @ h.to(compute).t()).to(w1.dtype)  # (2C, C)
        del h
        grad_h = (w1.to(compute).t() @ grad_u).view_as(x).float()  # (C, B, T)
        del grad_u
        grad_x, grad_shift, grad_scale = modulate_backward(
            grad_h, x, mean, rstd, shift, scale, dim=-1
        )
        grad_x.add_(grad_out)
        return grad_x, grad_shift, grad_scale, grad_w1, grad_b1, grad_w2, grad_b2, grad_gate


def to_channel_major(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (C, B, T) contiguous via the fast 2-D transpose."""
    batch, length, channels = x.shape
    return x.reshape(batch * length, channels).t().contiguous().view(channels, batch, length)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(C, B, T) -> (B, T, C) contiguous via the fast 2-D transpose."""
    channels, batch, length = x.shape
    return x.reshape(channels, batch * length).t().contiguous().view(batch, length, channels)
