"""Buffer pool of the fused LDNS blocks: reuse rules, and stacks that stay exact while reusing."""

from __future__ import annotations

import pytest
import torch

from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.models.layers.buffer_pool import POOL, BufferPool
from neuralcli.models.layers.s4d import S4D

CPU = torch.device("cpu")


def test_given_buffer_is_handed_out_again_with_a_new_shape() -> None:
    pool = BufferPool(min_bytes=64)
    first = pool.take((4, 8), dtype=torch.float32, device=CPU)
    pointer = first.data_ptr()
    pool.give(first)
    assert pool.held_bytes() == 4 * 8 * 4
    again = pool.take((2, 16), dtype=torch.float32, device=CPU)
    assert again.data_ptr() == pointer and again.shape == (2, 16)
    assert pool.held_bytes() == 0
    other_dtype = pool.take((4, 8), dtype=torch.float64, device=CPU)
    assert other_dtype.data_ptr() != pointer


def test_small_views_and_foreign_tensors_are_not_kept() -> None:
    pool = BufferPool(min_bytes=1024)
    pool.give(torch.empty(16))  # 64 bytes: below min_bytes
    big = torch.empty(64, 64)
    pool.give(big[1:])  # a view with an offset
    pool.give(big.t())  # not contiguous
    assert pool.held_bytes() == 0
    pool.give(big)
    assert pool.held_bytes() == 64 * 64 * 4
    pool.release()
    assert pool.held_bytes() == 0


def test_least_recently_used_sizes_are_dropped() -> None:
    pool = BufferPool(min_bytes=4, max_sizes=2)
    for size in (10, 20, 30):
        pool.give(torch.empty(size))
    assert pool.held_bytes() == (20 + 30) * 4


@pytest.fixture
def pooled(monkeypatch: pytest.MonkeyPatch):
    """Every tensor of the fused blocks goes through the shared pool, however small."""
    POOL.release()
    monkeypatch.setattr(POOL, "min_bytes", 0)
    yield POOL
    POOL.release()


def _steps(model: torch.nn.Module, run, weights: torch.Tensor, count: int):
    results = []
    for _ in range(count):
        model.zero_grad()
        out = run()
        (out * weights).sum().backward()
        results.append((out.detach().clone(), [p.grad.clone() for p in model.parameters()]))
    return results


def _check_pooled_steps_match_plain(model, run, shape, monkeypatch, pool) -> None:
    weights = torch.randn(shape)
    fused = _steps(model, run, weights, 3)  # later steps run on reused buffers
    assert pool.held_bytes() > 0
    monkeypatch.setattr(S4D, "direct_max_length", 0)  # the plain autograd path
    ((plain, plain_grads),) = _steps(model, run, weights, 1)
    for out, grads in fused:
        torch.testing.assert_close(out, plain, atol=1e-4, rtol=1e-4)
        for got, want in zip(grads, plain_grads, strict=True):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_denoiser_steps_on_reused_buffers_match_plain(pooled, monkeypatch) -> None:
    torch.manual_seed(0)
    model = Denoiser(config=DenoiserConfig(hidden_channels=16, num_blocks=2, state_size=8))
    with torch.no_grad():
        for block in model.blocks:  # leave adaLN-Zero so that every path carries signal
            block.modulation.weight.normal_(std=0.3)
            block.modulation.bias.normal_(std=0.3)
    x = torch.randn(3, 20, 8)  # (B, T, d)
    timesteps = torch.randint(0, 1000, (3,))
    run = lambda: model(x, timesteps)  # noqa: E731
    _check_pooled_steps_match_plain(model, run, (3, 20, 8), monkeypatch, pooled)


def test_autoencoder_steps_on_reused_buffers_match_plain(pooled, monkeypatch) -> None:
    torch.manual_seed(0)
    config = AutoencoderConfig(n_neurons=12, hidden_channels=16, num_blocks=2, state_size=8)
    model = SpikeAutoencoder(config=config)
    with torch.no_grad():
        for block in model.blocks:
            block.modulation.normal_(std=0.3)
    spikes = torch.poisson(torch.full((3, 20, 12), 0.5))  # (B, T, N)
    run = lambda: model(spikes).rates  # noqa: E731
    _check_pooled_steps_match_plain(model, run, (3, 20, 12), monkeypatch, pooled)


def test_inference_returns_its_buffers_and_matches_training_forward(pooled) -> None:
    torch.manual_seed(0)
    model = Denoiser(config=DenoiserConfig(hidden_channels=16, num_blocks=2, state_size=8))
    x, timesteps = torch.randn(2, 12, 8), torch.randint(0, 1000, (2,))
    with torch.no_grad():
        first = model(x, timesteps)
        held = pooled.held_bytes()
        second = model(x, timesteps)
    assert held > 0 and pooled.held_bytes() == held  # the second pass reused the same buffers
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    torch.testing.assert_close(model(x, timesteps).detach(), first, atol=1e-6, rtol=1e-6)


def test_second_backward_through_a_fused_block_is_refused(pooled) -> None:
    torch.manual_seed(0)
    model = Denoiser(config=DenoiserConfig(hidden_channels=16, num_blocks=1, state_size=8))
    loss = model(torch.randn(2, 12, 8), torch.randint(0, 1000, (2,))).square().sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward"):
        loss.backward()
