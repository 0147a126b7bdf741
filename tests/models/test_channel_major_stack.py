"""Channel-major fused stacks (Toeplitz lengths) match the channels-last plain composition,
also over several steps that run on reused buffers from the pool (buffer_pool.py)."""

from __future__ import annotations

import pytest
import torch

from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.models.layers.s4d import S4D


@pytest.fixture(params=["fresh", "pooled"])
def buffers(request) -> str:
    """Fresh tensors, or every tensor of the fused blocks through the pool (pool_all)."""
    if request.param == "pooled":
        request.getfixturevalue("pool_all")
    return request.param


def _value_and_grads(model: torch.nn.Module, run, weights: torch.Tensor):
    model.zero_grad()
    out = run()
    (out * weights).sum().backward()
    return out.detach().clone(), [p.grad.clone() for p in model.parameters()]


def _compare(model: torch.nn.Module, run, shape, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = torch.randn(shape)
    fused_steps = [_value_and_grads(model, run, weights) for _ in range(3)]  # buffers reused
    monkeypatch.setattr(S4D, "direct_max_length", 0)  # every length takes the plain path
    plain, plain_grads = _value_and_grads(model, run, weights)
    for fused, fused_grads in fused_steps:
        _assert_close_at_scale(fused, plain)
        for got, want in zip(fused_grads, plain_grads, strict=True):
            _assert_close_at_scale(got, want)


def _assert_close_at_scale(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to float32 rounding of two convolution algorithms (Toeplitz matmul vs FFT),
    measured against the tensor's own scale: gradients here reach 40, and a near-zero entry
    of such a tensor carries errors of that scale, not of its own size."""
    scale = want.abs().max().clamp_min(1.0)
    torch.testing.assert_close(got / scale, want / scale, atol=1e-5, rtol=1e-4)


def test_denoiser_channel_major_stack_matches_plain(buffers, monkeypatch) -> None:
    torch.manual_seed(0)
    model = Denoiser(config=DenoiserConfig(hidden_channels=16, num_blocks=2, state_size=8))
    with torch.no_grad():
        for block in model.blocks:  # leave adaLN-Zero so that every path carries signal
            block.modulation.weight.normal_(std=0.3)
            block.modulation.bias.normal_(std=0.3)
    x = torch.randn(3, 20, 8)  # (B, T, d)
    timesteps = torch.randint(0, 1000, (3,))
    _compare(model, lambda: model(x, timesteps), (3, 20, 8), monkeypatch)


def test_autoencoder_channel_major_stack_matches_plain(buffers, monkeypatch) -> None:
    torch.manual_seed(0)
    config = AutoencoderConfig(n_neurons=12, hidden_channels=16, num_blocks=2, state_size=8)
    model = SpikeAutoencoder(config=config)
    with torch.no_grad():
        for block in model.blocks:
            block.modulation.normal_(std=0.3)
    spikes = torch.poisson(torch.full((3, 20, 12), 0.5))  # (B, T, N)
    _compare(model, lambda: model(spikes).rates, (3, 20, 12), monkeypatch)
