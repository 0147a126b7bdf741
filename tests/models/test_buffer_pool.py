"""Buffer pool of the fused LDNS blocks: reuse rules, inference, and one backward per forward.

Stacks that train on reused buffers are compared with the plain path in
test_channel_major_stack.py.
"""

from __future__ import annotations

import pytest
import torch

from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.models.layers.buffer_pool import BufferPool

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


def test_inference_returns_its_buffers_and_matches_training_forward(pool_all) -> None:
    torch.manual_seed(0)
    model = Denoiser(config=DenoiserConfig(hidden_channels=16, num_blocks=2, state_size=8))
    x, timesteps = torch.randn(2, 12, 8), torch.randint(0, 1000, (2,))
    with torch.no_grad():
        first = model(x, timesteps)
        held = pool_all.held_bytes()
        second = model(x, timesteps)
    assert held > 0 and pool_all.held_bytes() == held  # the second pass reused the same buffers
    torch.testing.assert_close(first, second, atol=0, rtol=0)
    torch.testing.assert_close(model(x, timesteps).detach(), first, atol=1e-6, rtol=1e-6)


def test_second_backward_through_a_fused_block_is_refused(pool_all) -> None:
    torch.manual_seed(0)
    model = Denoiser(config=DenoiserConfig(hidden_channels=16, num_blocks=1, state_size=8))
    loss = model(torch.randn(2, 12, 8), torch.randint(0, 1000, (2,))).square().sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass per forward"):
        loss.backward()
