"""Patch tokenizer of the distillation models (distillation §3, §5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neuralcli.models.layers.tokenizer import (
    PatchTokenizer,
    TokenizerConfig,
    pool_time_steps,
)


def make(mode: str = "lfp-conv", sessions: dict | None = None, **overrides) -> PatchTokenizer:
    torch.manual_seed(0)
    config = TokenizerConfig(mode=mode, d_model=16, patch_size=4, mlp_hidden=8, **overrides)
    return PatchTokenizer(config=config, sessions=sessions or {"a": 10})


def test_patches_are_time_major_with_time_positions():
    tokenizer = make()
    x = torch.randn(2, 5, 10)
    patches = tokenizer.patchify(x)
    assert patches.values.shape == (2, 15, 4)  # P = ceil(10 / 4) = 3
    for t in range(5):
        for p in range(3):
            expected = F.pad(x, (0, 2))[:, t, p * 4 : (p + 1) * 4]
            assert torch.equal(patches.values[:, t * 3 + p], expected)
    assert not patches.entry_valid[:, 2::3, 2:].any()  # channels 10, 11 are padding
    assert patches.entry_valid[:, 2::3, :2].all()
    tokens = tokenizer(x, torch.zeros(2, dtype=torch.long))
    assert tokens.values.shape == (2, 15, 16)
    assert tokens.positions.tolist() == [t for t in range(5) for _ in range(3)]
    assert tokens.valid is None
    assert (tokens.n_steps, tokens.n_patches) == (5, 3)


def test_counts_are_clamped_and_padding_uses_the_padding_index():
    tokenizer = make("spikes", max_count=5)
    embedding = tokenizer.embedder.embedding
    assert embedding.num_embeddings == 7 and embedding.padding_idx == 6
    assert embedding.weight[6].abs().sum() > 0  # N(0, std) init covers the padding row too
    x = torch.tensor([[[-2, 0, 3, 9, 5, 1, 2, 7, 4, 0]]])  # (1, 1, 10)
    values = tokenizer.patchify(x).values.reshape(-1)
    assert values.tolist() == [0, 0, 3, 5, 5, 1, 2, 5, 4, 0, 6, 6]
    tokens = tokenizer(x, torch.zeros(1, dtype=torch.long))
    rows = embedding.weight[values].reshape(3, 16)  # concatenated per-channel lookups
    expected = rows + tokenizer.space_embedding.weight[:3]
    torch.testing.assert_close(tokens.values[0], expected)


def test_spike_tokenizer_needs_d_divisible_by_patch_size():
    with pytest.raises(ValueError, match="divisible"):
        PatchTokenizer(
            config=TokenizerConfig(mode="spikes", d_model=18, patch_size=4), sessions={"a": 4}
        )


def test_conv_matches_conv1d_and_is_causal_over_the_flattened_axis():
    tokenizer = make("lfp-conv", conv_kernel=3, conv_dilation=2)
    x = torch.randn(2, 6, 10)
    values = tokenizer.patchify(x).values  # (2, 18, 4)
    out = tokenizer.embedder(values)
    conv = tokenizer.embedder.conv
    expected = conv(F.pad(values.transpose(1, 2), (4, 0))).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    changed = x.clone()
    changed[:, 3, 5] += 10.0  # channel 5 -> patch 1: token 3·3 + 1 = 10
    session = torch.zeros(2, dtype=torch.long)
    before = tokenizer(x, session).values
    after = tokenizer(changed, session).values
    torch.testing.assert_close(before[:, :10], after[:, :10], rtol=0, atol=0)
    assert (before[:, 10] - after[:, 10]).abs().max() > 0
    assert (before[:, 12] - after[:, 12]).abs().max() > 0  # dilation 2 reaches n + 2


def test_mask_zeroes_raw_inputs_and_uses_the_mask_vector():
    tokenizer = make("lfp-conv", mask_token=True)
    with torch.no_grad():
        tokenizer.mask_vector.normal_()
    x = torch.randn(2, 4, 10)
    session = torch.zeros(2, dtype=torch.long)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, 4] = mask[1, 7] = True
    tokens = tokenizer(x, session, mask=mask)
    space = tokenizer.space_embedding.weight
    torch.testing.assert_close(tokens.values[0, 4], tokenizer.mask_vector + space[1])
    torch.testing.assert_close(tokens.values[1, 7], tokenizer.mask_vector + space[1])
    # unmasked tokens see zeros where the masked token's raw input was
    zeroed = x.clone()
    zeroed[0, 1, 4:8] = 0.0
    zeroed[1, 2, 4:8] = 0.0
    plain = tokenizer(zeroed, session).values
    torch.testing.assert_close(tokens.values[~mask], plain[~mask])
    with pytest.raises(ValueError, match="mask_token"):
        make("lfp-conv")(x, session, mask=mask)


@pytest.mark.parametrize("mode", ["lfp-conv", "lfp-mlp", "spikes"])
def test_mixed_channel_batches(mode):
    tokenizer = make(mode, sessions={"wide": 10, "narrow": 5})
    x = torch.randint(0, 4, (2, 3, 10)).float()
    n_channels = torch.tensor([10, 5])
    session = torch.tensor([0, 1])
    patches = tokenizer.patchify(x, n_channels)
    pad = 6 if mode == "spikes" else 0
    narrow = patches.values[1].reshape(3, 12)  # (T, P·S)
    assert (narrow[:, 5:] == pad).all()
    assert not patches.entry_valid[1].reshape(3, 12)[:, 5:].any()
    assert patches.entry_valid[1].reshape(3, 12)[:, :5].all()
    tokens = tokenizer.eval()(x, session, n_channels)
    assert tokens.valid is not None
    assert tokens.valid[0].all()
    assert tokens.valid[1].tolist() == [True, True, False] * 3
    if mode != "lfp-conv":
        # per-token embeddings: a narrow item alone gives the same values for its valid
        # tokens (the causal conv instead runs over the batch's P-patch flattened axis)
        alone = tokenizer(x[1:, :, :5], session[1:])
        torch.testing.assert_close(tokens.values[1][tokens.valid[1]], alone.values[0])
    with pytest.raises(ValueError, match="narrow"):
        tokenizer(x, torch.tensor([1, 1]), torch.tensor([10, 5]))
    with pytest.raises(ValueError, match="narrow"):
        tokenizer(x, torch.tensor([0, 1]))  # all 10 channels real in a 5-channel session


def test_single_session_serves_every_session_index():
    tokenizer = make(sessions={"only": 10})
    x = torch.randn(3, 2, 10)
    first = tokenizer(x, torch.zeros(3, dtype=torch.long)).values
    other = tokenizer(x, torch.tensor([4, 7, 1])).values
    torch.testing.assert_close(first, other, rtol=0, atol=0)
    two = make(sessions={"a": 10, "b": 10})
    with pytest.raises(ValueError, match="session indices"):
        two(x, torch.tensor([0, 1, 2]))


def test_sessions_and_add_session_keep_rows_and_keys():
    tokenizer = make(sessions={"a": 10, "b": 5})
    assert tokenizer.sessions == ["a", "b"] and tokenizer.channel_counts == [10, 5]
    assert tokenizer.session_index("b") == 1
    with pytest.raises(ValueError, match="known sessions: a, b"):
        tokenizer.session_index("c")
    before = {k: v.clone() for k, v in tokenizer.state_dict().items()}
    assert tokenizer.add_session("c", 9) == 2
    after = tokenizer.state_dict()
    assert set(after) == set(before)
    assert after["space_embedding.weight"].shape == (3 + 2 + 3, 16)
    torch.testing.assert_close(
        after["space_embedding.weight"][:5], before["space_embedding.weight"]
    )
    assert after["space_embedding.weight"][5:].abs().sum() > 0
    x = torch.randn(1, 2, 9)
    tokens = tokenizer(x, torch.tensor([2]))
    expected = (
        tokenizer.embedder(tokenizer.patchify(x).values)
        + after["space_embedding.weight"][[5, 6, 7, 5, 6, 7]]
    )
    torch.testing.assert_close(tokens.values[0], expected[0])
    with pytest.raises(ValueError, match="already"):
        tokenizer.add_session("a", 3)


def test_space_embeddings_receive_gradients_in_one_parameter():
    tokenizer = make(sessions={"a": 10, "b": 5})
    x = torch.randn(2, 3, 10)
    tokens = tokenizer(x, torch.tensor([1, 1]), torch.tensor([5, 5]))
    tokens.values.sum().backward()
    grad = tokenizer.space_embedding.weight.grad
    assert grad[:3].abs().sum() == 0 and grad[3:].abs().sum() > 0


def test_pool_time_steps():
    tokens = torch.full((1, 6, 2), 3.0)  # T = 2, P = 3
    torch.testing.assert_close(pool_time_steps(tokens, 2), torch.full((1, 2, 2), 3.0))
    zero = pool_time_steps(tokens, 2, include_zero=True)
    torch.testing.assert_close(zero, torch.full((1, 2, 2), 2.25))  # distillation §5
    values = torch.arange(12.0).reshape(1, 6, 2)
    valid = torch.tensor([[True, True, False, True, False, False]])
    pooled = pool_time_steps(values, 2, valid)
    torch.testing.assert_close(pooled[0, 0], values[0, :2].mean(0))
    torch.testing.assert_close(pooled[0, 1], values[0, 3])
    pooled_zero = pool_time_steps(values, 2, valid, include_zero=True)
    torch.testing.assert_close(pooled_zero[0, 0], values[0, :2].sum(0) / 3)
