"""Diagonal state-space layer (S4D-Lin) used in place of LDNS's DPLR S4 (LDNS §3.2).

Deviations from the original (documented, LDNS §3.2):

- **Diagonal instead of DPLR.** The original vendors full S4 (HiPPO-LegS, rank-1 low-rank
  term, bilinear discretisation, Cauchy kernel). We use S4D-Lin: A_n = −½ + iπn, B_n = 1,
  zero-order hold. The layer has no B or P parameters, so it holds fewer parameters than the
  original (per channel 194 instead of about 322 at state size 64, bidirectional).
- **No attunement.** The kernel is computed for the actual length on every call (no
  `l_kernel` buffer, no in-place rewrite of C), so checkpoints are not interchangeable with
  the original's but any length works.
- **Weight decay.** The original decays every parameter (AdamW 0.01, its optimizer hints are
  ignored). `ssm_parameters()` lists A (real and imaginary parts) and log dt so that models
  can put them in a group without weight decay, as S4D practice does.

Layout: input and output are channels last, (B, L, H). The convolution runs in float32 with
autocast disabled, whatever the caller's precision.

The convolution is the linear (zero-padded) convolution of LDNS §3.1. For L up to
`direct_max_length` it is evaluated as a per-channel Toeplitz matrix product (one batched
matmul: on CPUs this is several times faster than FFTs of length 2L at L = 256); longer
inputs use an rfft of length 2L over time. Both give the same result up to float rounding.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn


class S4D(nn.Module):
    """y = K * x + D·x per channel, with K the ZOH kernel of a diagonal SSM (LDNS §3.2).

    Bidirectional (LDNS §3.1): a second C gives a backward kernel k1 and
    y_t = Σ_{s≤t} k0[t−s]·x_s + Σ_{m≥0} k1[m]·x_{t+1+m} + D·x_t (the backward kernel
    starts at lag −1, as in the original).
    """

    direct_max_length = 512

    def __init__(
        self,
        *,
        channels: int,
        state_size: int = 64,
        bidirectional: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ) -> None:
        super().__init__()
        if state_size < 2 or state_size % 2:
            raise ValueError(f"state_size must be an even number >= 2, got {state_size}")
        modes = state_size // 2
        self.channels = channels
        self.state_size = state_size
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)  # (H,) log-uniform in [dt_min, dt_max]
        # S4D-Lin: A_n = -1/2 + i·π·n, real part kept negative through -exp.
        self.log_a_real = nn.Parameter(torch.full((channels, modes), math.log(0.5)))  # (H, M)
        self.a_imag = nn.Parameter(math.pi * torch.arange(modes).float().repeat(channels, 1))
        # C ~ complex N(0, 1) (each part variance 1/2), stored as real pairs: (dirs, H, M, 2).
        self.c = nn.Parameter(torch.randn(directions, channels, modes, 2) * math.sqrt(0.5))
        self.d = nn.Parameter(torch.randn(channels))  # (H,) skip

    def ssm_parameters(self) -> list[nn.Parameter]:
        """A (real and imaginary parts) and log dt: the parameters S4D practice does not decay."""
        return [self.log_a_real, self.a_imag, self.log_dt]

    def kernel(self, length: int) -> torch.Tensor:
        """ZOH kernels (dirs, H, L): K[l] = 2·Re Σ_n C_n (exp(dt·A_n) − 1)/A_n · exp(dt·A_n·l).

        LDNS §3.2; row 0 is the forward kernel k0, row 1 (bidirectional) the backward k1.
        """
        dt = torch.exp(self.log_dt.float())  # (H,)
        a_real = -torch.exp(self.log_a_real.float())  # (H, M)
        a_imag = self.a_imag.float()  # (H, M)
        a = torch.complex(a_real, a_imag)  # (H, M)
        c = torch.view_as_complex(self.c.float().contiguous())  # (dirs, H, M)
        c_zoh = c * torch.expm1(a * dt[:, None]) / a  # (dirs, H, M)
        # Real arithmetic from here: complex batched matmuls are slow on CPU.
        weights = torch.cat((c_zoh.real, -c_zoh.imag), dim=-1).transpose(0, 1)  # (H, dirs, 2M)
        rate, angle = a_real * dt[:, None], a_imag * dt[:, None]  # (H, M) each: dt·A
        kernel = vandermonde_kernel(weights, rate, angle, length)  # (H, dirs, L)
        return kernel.transpose(0, 1)  # (dirs, H, L)

    def taps(self, length: int) -> torch.Tensor:
        """Taps of lags −(L−1)..(L−1), (H, 2L−1) float32: index L−1+j holds lag j = t − s.

        Lag j ≥ 0 is k0[j] (plus D at j = 0); lag j < 0 is k1[−j−1] when bidirectional
        (the backward kernel starts at lag −1, LDNS §3.1), else 0.
        """
        with torch.autocast(device_type=self.d.device.type, enabled=False):
            k = self.kernel(length)  # (dirs, H, L)
            # The skip D is the lag-0 tap of the forward kernel.
            k0 = torch.cat((k[0, :, :1] + self.d.float()[:, None], k[0, :, 1:]), dim=-1)
            if self.bidirectional:
                past = torch.flip(k[1, :, : length - 1], dims=(-1,))  # (H, L-1)
            else:
                past = k0.new_zeros(self.channels, length - 1)
            return torch.cat((past, k0), dim=-1)  # (H, 2L-1)

    def uses_toeplitz(self, length: int) -> bool:
        """Whether a length-L input is convolved by Toeplitz matmul (else by FFT)."""
        return length <= self.direct_max_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, H) -> y (B, L, H), float32."""
        length = x.shape[1]
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            taps = self.taps(length)  # (H, 2L-1)
            if self.uses_toeplitz(length):
                return _ToeplitzConv.apply(x, taps)
            return fft_conv(x, taps)


_LAG_BLOCK = 16  # lags l = 16·j + i: the kernel is a product of two small power tables


def vandermonde_kernel(
    weights: torch.Tensor, rate: torch.Tensor, angle: torch.Tensor, length: int
) -> torch.Tensor:
    """K[h, d, l] = 2·Re Σ_n w[h, d, n]·z[h, n]^l for l < length: (H, D, L).

    weights (H, D, 2M) holds [Re w, −Im w]; rate and angle (H, M) are Re and Im of log z.
    With l = 16·j + i, w·z^l = (w·z^(16·j))·z^i, so the kernel is one batched matmul of an
    (H, D·J, 2M) table by an (H, 2M, 16) table, J = ⌈L/16⌉: exp, cos and sin run on
    (H, M, J) and (H, M, 16) only, and no (H, M, L) basis is ever built. Plain autograd
    differentiates it: every saved tensor is table-sized (at H = 256, M = 32, L = 140,
    forward and backward take about a third of the time of a full basis).
    """
    channels, modes = rate.shape
    directions = weights.shape[1]
    blocks = -(-length // _LAG_BLOCK)
    step = torch.arange(_LAG_BLOCK, device=rate.device, dtype=rate.dtype)  # i
    start = torch.arange(blocks, device=rate.device, dtype=rate.dtype) * _LAG_BLOCK  # 16·j
    start_re, start_im = _powers(rate, angle, start)  # (H, M, J): z^(16·j)
    start_re = start_re.transpose(1, 2)[:, None]  # (H, 1, J, M)
    start_im = start_im.transpose(1, 2)[:, None]
    w_re, w_im_neg = weights[:, :, None, :modes], weights[:, :, None, modes:]  # (H, D, 1, M)
    # [Re a, −Im a] of a = w·z^(16·j), with w = w_re − i·w_im_neg.
    left = torch.cat(
        (w_re * start_re + w_im_neg * start_im, w_im_neg * start_re - w_re * start_im), dim=-1
    ).view(channels, directions * blocks, 2 * modes)  # (H, D·J, 2M)
    right = torch.cat(_powers(rate, angle, step), dim=1)  # (H, 2M, 16): [Re z^i; Im z^i]
    kernel = torch.bmm(left, right)  # (H, D·J, 16): Re Σ_n a·z^i
    return 2.0 * kernel.view(channels, directions, blocks * _LAG_BLOCK)[..., :length]


def _powers(
    rate: torch.Tensor, angle: torch.Tensor, lags: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re and Im of exp((rate + i·angle) · lag) for each lag: (H, M) twice, (K,) -> (H, M, K)."""
    magnitude = torch.exp(rate[:, :, None] * lags)
    phase = angle[:, :, None] * lags
    return magnitude * torch.cos(phase), magnitude * torch.sin(phase)


class _ToeplitzConv(torch.autograd.Function):
    """y[b, t, h] = Σ_s taps[h, L−1 + t − s]·x[b, s, h] as one matmul batched over channels.

    The (H, L, L) Toeplitz matrix is a flipped `unfold` of the taps; it is rebuilt in backward
    rather than stored, so only the channel-major copy of x and the taps are kept.
    Channels-last activations go to channel-major and back through plain 2-D transposes
    ((B·L, H) <-> (H, B·L)), the fastest copies torch has for this.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        x_cm = x.reshape(batch * length, channels).t().contiguous()  # (H, B·L)
        x_cm = x_cm.view(channels, batch, length)  # (H, B, L)
        toeplitz = toeplitz_matrix(taps, length)  # (H, L_t, L_s)
        y_cm = torch.bmm(x_cm, toeplitz.transpose(1, 2))  # (H, B, L)
        ctx.save_for_backward(x_cm, taps)
        return y_cm.view(channels, batch * length).t().contiguous().view(batch, length, channels)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x_cm, taps = ctx.saved_tensors
        channels, batch, length = x_cm.shape
        grad_cm = grad_y.reshape(batch * length, channels).t().contiguous()  # (H, B·L)
        grad_cm = grad_cm.view(channels, batch, length)  # (H, B, L)
        grad_x = grad_taps = None
        if ctx.needs_input_grad[0]:
            grad_x_cm = torch.bmm(grad_cm, toeplitz_matrix(taps, length))  # (H, B, L)
            grad_x = grad_x_cm.view(channels, batch * length).t().contiguous()  # (B·L, H)
            grad_x = grad_x.view(batch, length, channels)
        if ctx.needs_input_grad[1]:
            grad_toeplitz = torch.bmm(grad_cm.transpose(1, 2), x_cm)  # (H, L_t, L_s)
            grad_taps = toeplitz_taps_grad(grad_toeplitz, taps.shape)  # (H, 2L-1)
        return grad_x, grad_taps


@functools.lru_cache(maxsize=8)
def _toeplitz_index(length: int, device: torch.device) -> torch.Tensor:
    """(L·L,) int64: the tap of each Toeplitz entry, [t·L + s] = L−1 + t − s."""
    steps = torch.arange(length, device=device)
    return (length - 1 + steps[:, None] - steps[None, :]).reshape(-1)


def toeplitz_matrix(
    taps: torch.Tensor, length: int, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """(H, 2L−1) taps -> (H, L, L) matrix with [h, t, s] = taps[h, L−1 + t − s].

    `out`, when given, is a contiguous (H, L, L) tensor to write into.
    """
    # One gather with a cached flat index: on CPU about twice as fast as flipping the rows of
    # an unfold view (13 vs 24 ms at H = L = 256, 2 threads), and it allocates nothing else.
    index = _toeplitz_index(length, taps.device)  # (L·L,)
    channels = taps.shape[0]
    if out is None:
        return taps.index_select(1, index).view(channels, length, length)
    torch.index_select(taps, 1, index, out=out.view(channels, length * length))
    return out


def toeplitz_taps_grad(grad_toeplitz: torch.Tensor, taps_shape: torch.Size) -> torch.Tensor:
    """Adjoint of `toeplitz_matrix`: (H, L, L) -> (H, 2L−1), each diagonal summed into its tap."""
    channels, length = grad_toeplitz.shape[0], grad_toeplitz.shape[-1]
    index = _toeplitz_index(length, grad_toeplitz.device)  # (L·L,)
    grad_taps = grad_toeplitz.new_zeros(taps_shape)
    return grad_taps.index_add_(1, index, grad_toeplitz.reshape(channels, -1))


def fft_conv(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Linear convolution by rfft of length 2L over time: x (B, L, H) -> (B, L, H).

    One circular kernel of length 2L holds both directions: positions 0..L−1 the taps of
    lags 0..L−1, positions L+1..2L−1 those of lags −(L−1)..−1 (position L, lag ±L, is never
    reached), so a single rfft/irfft pair gives the bidirectional output.
    """
    length = x.shape[1]
    past, present = taps[:, : length - 1], taps[:, length - 1 :]  # (H, L-1), (H, L)
    circular = torch.cat((present, past.new_zeros(past.shape[0], 1), past), dim=-1)  # (H, 2L)
    kernel_f = torch.fft.rfft(circular, dim=-1).transpose(0, 1)  # (L+1, H)
    x_f = torch.fft.rfft(x, n=2 * length, dim=1)  # (B, L+1, H)
    return torch.fft.irfft(x_f * kernel_f, n=2 * length, dim=1)[:, :length]  # (B, L, H)
