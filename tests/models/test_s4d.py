"""S4D layer: ZOH kernel, Toeplitz and FFT convolutions against a direct reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralcli.models.layers.s4d import (
    S4D,
    _ToeplitzConv,
    fft_conv,
    toeplitz_matrix,
    toeplitz_taps_grad,
    vandermonde_kernel,
)


def reference_conv(x: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor | None) -> torch.Tensor:
    """y_t = Σ_{s≤t} k0[t−s] x_s + Σ_{m≥0} k1[m] x_{t+1+m}, by explicit sums (LDNS §3.1)."""
    batch, length, channels = x.shape
    y = torch.zeros_like(x, dtype=torch.float64)
    xd = x.double()
    for t in range(length):
        for s in range(length):
            if s <= t:
                y[:, t] += k0[:, t - s].double() * xd[:, s]
            elif k1 is not None:
                y[:, t] += k1[:, s - t - 1].double() * xd[:, s]
    return y


def kernels_with_skip(layer: S4D, length: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    k = layer.kernel(length).detach()
    k0 = k[0].clone()
    k0[:, 0] += layer.d.detach()
    return k0, (k[1] if layer.bidirectional else None)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_matches_direct_convolution(bidirectional: bool) -> None:
    torch.manual_seed(0)
    layer = S4D(channels=3, state_size=8, bidirectional=bidirectional)
    x = torch.randn(2, 20, 3)
    k0, k1 = kernels_with_skip(layer, 20)
    expected = reference_conv(x, k0, k1).float()
    torch.testing.assert_close(layer(x).detach(), expected, atol=1e-4, rtol=1e-4)
    layer.direct_max_length = 0  # force the FFT path
    torch.testing.assert_close(layer(x).detach(), expected, atol=1e-4, rtol=1e-4)


def test_zoh_kernel_formula() -> None:
    torch.manual_seed(1)
    layer = S4D(channels=2, state_size=4)
    dt = np.exp(layer.log_dt.detach().double().numpy())
    a = -np.exp(layer.log_a_real.detach().double().numpy()) + 1j * layer.a_imag.detach().numpy()
    c = layer.c.detach().double().numpy()
    c = c[..., 0] + 1j * c[..., 1]  # (dirs, H, M)
    lags = np.arange(7)
    expected = np.zeros((1, 2, 7))
    for h in range(2):
        for n in range(2):
            da = dt[h] * a[h, n]
            term = c[0, h, n] * (np.exp(da) - 1) / a[h, n] * np.exp(da * lags)
            expected[0, h] += 2 * term.real
    np.testing.assert_allclose(layer.kernel(7).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_s4d_lin_init() -> None:
    torch.manual_seed(2)
    layer = S4D(channels=50, state_size=64, bidirectional=True)
    a_real = -torch.exp(layer.log_a_real.detach())
    torch.testing.assert_close(a_real, torch.full((50, 32), -0.5))
    torch.testing.assert_close(layer.a_imag.detach()[0], math.pi * torch.arange(32).float())
    dt = torch.exp(layer.log_dt.detach())
    assert dt.min() >= 1e-3 and dt.max() <= 1e-1
    assert layer.c.shape == (2, 50, 32, 2)
    params = {id(p) for p in layer.ssm_parameters()}
    assert params == {id(layer.log_a_real), id(layer.a_imag), id(layer.log_dt)}


def test_unidirectional_is_causal() -> None:
    torch.manual_seed(3)
    layer = S4D(channels=4, state_size=8, bidirectional=False)
    x = torch.randn(2, 30, 4)
    perturbed = x.clone()
    perturbed[:, 17] += 5.0
    y, y_perturbed = layer(x).detach(), layer(perturbed).detach()
    torch.testing.assert_close(y[:, :17], y_perturbed[:, :17])
    assert (y[:, 17:] - y_perturbed[:, 17:]).abs().max() > 1e-3


def test_bidirectional_backward_kernel_starts_at_lag_minus_one() -> None:
    torch.manual_seed(4)
    layer = S4D(channels=2, state_size=8, bidirectional=True)
    impulse = torch.zeros(1, 12, 2)
    impulse[0, 6] = 1.0
    y = layer(impulse).detach()[0]  # (L, H)
    k = layer.kernel(12).detach()
    torch.testing.assert_close(y[6], k[0, :, 0] + layer.d.detach())  # lag 0: k0[0] + D
    torch.testing.assert_close(y[7], k[0, :, 1])  # lag 1: k0[1]
    torch.testing.assert_close(y[5], k[1, :, 0])  # lag −1: k1[0]
    torch.testing.assert_close(y[3], k[1, :, 2])  # lag −3: k1[2]


def test_any_length_fft_path_matches_numpy_convolution() -> None:
    torch.manual_seed(5)
    layer = S4D(channels=2, state_size=8, bidirectional=True)
    length = 700  # above direct_max_length: FFT path
    assert not layer.uses_toeplitz(length)
    x = torch.randn(1, length, 2)
    y = layer(x).detach()
    k0, k1 = kernels_with_skip(layer, length)
    for h in range(2):
        xs = x[0, :, h].double().numpy()
        causal = np.convolve(xs, k0[h].double().numpy())[:length]
        # anticausal part: Σ_m k1[m] x[t+1+m] = correlation with the lag −1 offset
        anti = np.convolve(xs[::-1], np.concatenate(([0.0], k1[h].double().numpy())))[:length]
        expected = causal + anti[::-1]
        np.testing.assert_allclose(y[0, :, h].numpy(), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("length", [9, 16, 33])
def test_vandermonde_kernel_matches_complex_powers_and_gradchecks(length: int) -> None:
    torch.manual_seed(7)
    weights = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)  # (H, dirs, 2M)
    rate = (-0.3 * torch.rand(3, 4, dtype=torch.float64)).requires_grad_()  # (H, M)
    angle = (2.0 * torch.rand(3, 4, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda w, r, a: vandermonde_kernel(w, r, a, length), (weights, rate, angle)
    )
    complex_modes = torch.complex(weights[..., :4], -weights[..., 4:])  # (H, dirs, M)
    lags = torch.arange(float(length), dtype=torch.float64)
    z = torch.exp(torch.complex(rate, angle)[:, :, None] * lags)  # (H, M, L)
    expected = 2.0 * torch.einsum("hdn,hnl->hdl", complex_modes, z).real
    kernel = vandermonde_kernel(weights, rate, angle, length)
    assert kernel.shape == (3, 2, length)
    torch.testing.assert_close(kernel, expected)


def test_vandermonde_kernel_float32_error_at_model_size() -> None:
    """H = 256, M = 32, L = 140 in float32 against float64: the MC_Maze AE's kernels."""
    torch.manual_seed(8)
    weights = torch.randn(256, 1, 64)
    rate = -0.1 * torch.rand(256, 32)
    angle = 3.0 * torch.rand(256, 32) + 0.15 * torch.arange(32.0)
    exact = vandermonde_kernel(weights.double(), rate.double(), angle.double(), 140)
    kernel = vandermonde_kernel(weights, rate, angle, 140)
    assert (kernel.double() - exact).abs().max() < 1e-5 * exact.abs().max()


def test_toeplitz_conv_gradients() -> None:
    torch.manual_seed(6)
    x = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    taps = torch.randn(3, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_ToeplitzConv.apply, (x, taps))
    torch.testing.assert_close(_ToeplitzConv.apply(x, taps), fft_conv(x, taps))


def test_fp32_convolution_under_bf16_autocast() -> None:
    torch.manual_seed(7)
    layer = S4D(channels=4, state_size=8, bidirectional=True)
    x = torch.randn(2, 32, 4)
    expected = layer(x).detach()
    for max_length in (512, 0):  # Toeplitz and FFT paths
        layer.direct_max_length = max_length
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x.bfloat16())
        assert y.dtype == torch.float32
        # only the input's bf16 rounding differs
        torch.testing.assert_close(y.detach(), expected, atol=0.05, rtol=0.02)


def test_rejects_odd_state_size() -> None:
    with pytest.raises(ValueError, match="state_size"):
        S4D(channels=2, state_size=7)


def test_toeplitz_matrix_entries_and_adjoint() -> None:
    torch.manual_seed(0)
    length = 5
    taps = torch.randn(3, 2 * length - 1)  # (H, 2L-1)
    matrix = toeplitz_matrix(taps, length)  # (H, L, L)
    assert matrix.is_contiguous()
    for t in range(length):
        for s in range(length):
            assert torch.equal(matrix[:, t, s], taps[:, length - 1 + t - s])
    # taps in a transposed layout (a view of a (2L-1, H) tensor) give the same matrix
    transposed = taps.t().contiguous().t()
    assert torch.equal(toeplitz_matrix(transposed, length), matrix)
    # <T(taps), G> = <taps, T*(G)> for the adjoint used in backward
    grad = torch.randn(3, length, length)
    lhs = (matrix * grad).sum()
    rhs = (taps * toeplitz_taps_grad(grad, taps.shape)).sum()
    torch.testing.assert_close(lhs, rhs)
