"""Fused pieces of the LDNS residual blocks with hand-written backward passes (CPU speed).

Autograd on the plain composition keeps about eleven (B, T, C)-sized tensors per block and
allocates many more temporaries in backward. These functions keep only the block input, the
S4 output, the residual between the mixers and the MLP pre-activation, and recompute the
rest (normalised inputs, GELU outputs, the gated MLP output) in backward. The math is the
plain composition (LDNS §2, §7); tests check values and gradients against it.

Layout: channels last, (B, T, C). `shift`, `scale` and `gate` broadcast as (C,) or (B, 1, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuralcli.models.layers.s4d import toeplitz_matrix, toeplitz_taps_grad

NORM_EPS = 1e-5  # nn.InstanceNorm1d default


def instance_norm_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and 1/std over time: x (B, T, C) -> (B, 1, C) twice."""
    # Two passes (mean, then the norm of the centred input) are several times faster on CPU
    # than torch.var_mean's Welford reduction over a middle dimension.
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, C)
    norm = torch.linalg.vector_norm(x - mean, dim=1, keepdim=True)  # (B, 1, C)
    return mean, torch.rsqrt(norm.square() / x.shape[1] + NORM_EPS)


def modulate(
    x: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
) -> torch.Tensor:
    """InstanceNorm(x)·(1 + scale) + shift as one affine pass: (B, T, C) -> (B, T, C)."""
    gain = rstd * (1.0 + scale)  # (B, 1, C)
    return torch.addcmul(shift - mean * gain, x, gain)


def modulate_backward(
    grad_h: torch.Tensor,
    x: torch.Tensor,
    mean: torch.Tensor,
    rstd: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of `modulate` (through the statistics) w.r.t. x, shift and scale.

    With x̂ = (x − μ)·r, A = r·(1 + scale), S1 = Σ_t dh and S2 = Σ_t dh·x̂:
    dx = A·dh − (A/T)·(S1 + x̂·S2), dshift = S1, dscale = S2 (summed to their shapes).
    """
    length = x.shape[1]
    s1 = grad_h.sum(dim=1, keepdim=True)  # (B, 1, C)
    s2 = rstd * ((grad_h * x).sum(dim=1, keepdim=True) - mean * s1)  # (B, 1, C)
    gain = rstd * (1.0 + scale)  # (B, 1, C)
    coef_x = -gain * rstd * s2 / length  # (B, 1, C)
    grad_x = torch.addcmul(-gain * s1 / length - mean * coef_x, x, coef_x)  # (B, T, C)
    grad_x.addcmul_(grad_h, gain)
    return grad_x, s1.sum_to_size(shift.shape), s2.sum_to_size(scale.shape)


def _to_channel_major(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (C, B, T) contiguous via the fast 2-D transpose."""
    batch, length, channels = x.shape
    return x.reshape(batch * length, channels).t().contiguous().view(channels, batch, length)


def _to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """(C, B, T) -> (B, T, C) contiguous via the fast 2-D transpose."""
    channels, batch, length = x.shape
    return x.view(channels, batch * length).t().contiguous().view(batch, length, channels)


class NormS4Conv(torch.autograd.Function):
    """y = S4 conv of InstanceNorm(x)·(1 + scale) + shift, with Toeplitz taps (H, 2L−1).

    Keeps x, the statistics and the taps (and the Toeplitz matrix when T <= B); the
    normalised input is rebuilt in backward. All in float32 (LDNS §3.2: the convolution
    runs in fp32).
    """

    @staticmethod
    def forward(ctx, x, shift, scale, taps):
        with torch.autocast(device_type=x.device.type, enabled=False):
            mean, rstd = instance_norm_stats(x)
            h_cm = _to_channel_major(modulate(x, mean, rstd, shift, scale))  # (C, B, T)
            toeplitz = toeplitz_matrix(taps, x.shape[1])  # (C, T, T)
            y_cm = torch.bmm(h_cm, toeplitz.transpose(1, 2))  # (C, B, T)
        # Keep the matrix for backward only when it is no larger than an activation (T <= B);
        # otherwise rebuilding it is cheaper than holding it.
        ctx.keep_toeplitz = x.shape[1] <= x.shape[0]
        kept = toeplitz if ctx.keep_toeplitz else None
        ctx.save_for_backward(x, mean, rstd, shift, scale, taps, kept)
        return _to_channels_last(y_cm)  # (B, T, C)

    @staticmethod
    def backward(ctx, grad_y):
        x, mean, rstd, shift, scale, taps, toeplitz = ctx.saved_tensors
        length = x.shape[1]
        grad_cm = _to_channel_major(grad_y)  # (C, B, T)
        h_cm = _to_channel_major(modulate(x, mean, rstd, shift, scale))  # (C, B, T)
        grad_taps = toeplitz_taps_grad(torch.bmm(grad_cm.transpose(1, 2), h_cm), taps.shape)
        del h_cm
        if toeplitz is None:
            toeplitz = toeplitz_matrix(taps, length)  # (C, T, T)
        grad_h = _to_channels_last(torch.bmm(grad_cm, toeplitz))  # (B, T, C)
        del toeplitz
        del grad_cm
        grad_x, grad_shift, grad_scale = modulate_backward(grad_h, x, mean, rstd, shift, scale)
        return grad_x, grad_shift, grad_scale, grad_taps


class GeluResidual(torch.autograd.Function):
    """out = x + gain·GELU(y) (+ bias): the gated (denoiser) or depthwise (AE) residual.

    Keeps y and gain; GELU(y) is recomputed in backward.
    """

    @staticmethod
    def forward(ctx, x, y, gain, bias):
        out = torch.addcmul(x, F.gelu(y), gain)  # (B, T, C)
        if bias is not None:
            out.add_(bias)
        ctx.save_for_backward(y, gain)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        y, gain = ctx.saved_tensors
        grad_gain = (grad_out * F.gelu(y)).sum_to_size(gain.shape)
        grad_y = torch.ops.aten.gelu_backward(grad_out * gain, y)
        grad_bias = grad_out.sum_to_size(gain.shape[-1:]) if ctx.has_bias else None
        return grad_out, grad_y, grad_gain, grad_bias


class NormMLPResidual(torch.autograd.Function):
    """out = x + gate·(Linear2(GELU(Linear1(InstanceNorm(x)·(1 + scale) + shift)))).

    `gate` None means no gate (AE), biases may be None. Keeps x, the statistics and the MLP
    pre-activation u; recomputes the normalised input, GELU(u) and (gated only) the MLP
    output in backward: one extra (B·T, 2C) x (2C, C) matmul buys one (B, T, C) tensor less
    per block. Matmuls run in u's dtype, so bf16 under autocast.
    """

    @staticmethod
    def forward(ctx, x, shift, scale, w1, b1, w2, b2, gate):
        mean, rstd = instance_norm_stats(x)
        h = modulate(x, mean, rstd, shift, scale)  # (B, T, C)
        u = F.linear(h, w1, b1)  # (B, T, 2C)
        del h
        m = F.linear(F.gelu(u), w2, b2)  # (B, T, C)
        out = x + m if gate is None else torch.addcmul(x, gate, m)  # (B, T, C)
        ctx.save_for_backward(x, mean, rstd, shift, scale, w1, w2, b2, u, gate)
        ctx.has_b1 = b1 is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, mean, rstd, shift, scale, w1, w2, b2, u, gate = ctx.saved_tensors
        compute = u.dtype
        channels, hidden = x.shape[-1], u.shape[-1]
        gelu_u = F.gelu(u).reshape(-1, hidden)  # (B·T, 2C)
        grad_gate = None
        if gate is None:
            grad_m = grad_out
        else:
            m = F.linear(gelu_u, w2.to(compute), None if b2 is None else b2.to(compute))
            grad_gate = (grad_out * m.view_as(grad_out)).sum_to_size(gate.shape)
            del m
            grad_m = grad_out * gate
        grad_m = grad_m.to(compute).reshape(-1, channels)  # (B·T, C)
        grad_b2 = grad_m.sum(0).to(b2.dtype) if b2 is not None else None
        grad_w2 = (grad_m.t() @ gelu_u).to(w2.dtype)  # (C, 2C)
        del gelu_u
        grad_u = torch.ops.aten.gelu_backward(grad_m @ w2.to(compute), u.reshape(-1, hidden))
        del grad_m
        grad_b1 = grad_u.sum(0).to(w1.dtype) if ctx.has_b1 else None
        h = modulate(x, mean, rstd, shift, scale).reshape(-1, channels)  # (B·T, C)
        grad_w1 = (grad_u.t() @ h.to(compute)).to(w1.dtype)  # (2C, C)
        del h
        grad_h = (grad_u @ w1.to(compute)).view_as(x).float()  # (B, T, C)
        del grad_u
        grad_x, grad_shift, grad_scale = modulate_backward(grad_h, x, mean, rstd, shift, scale)
        grad_x.add_(grad_out)
        return grad_x, grad_shift, grad_scale, grad_w1, grad_b1, grad_w2, grad_b2, grad_gate
