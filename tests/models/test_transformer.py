"""Transformer encoder of the distillation models (distillation §4): fused autograd pieces
against a plain composition, RoPE, RMSNorm, padding masks, bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from neuralcli.models.layers import transformer as T
from neuralcli.models.layers.transformer import (
    RMSNorm,
    RotaryEmbedding,
    TransformerConfig,
    TransformerEncoder,
)


def make(**overrides) -> TransformerEncoder:
    torch.manual_seed(0)
    values = {"d_model": 16, "num_layers": 2, "num_heads": 2, "dropout": 0.0, **overrides}
    encoder = TransformerEncoder(config=TransformerConfig(**values))
    with torch.no_grad():  # non-trivial norm weights and biases
        for name, parameter in encoder.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return encoder


def rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate pairs (j, j + D/2) as complex numbers x_j + i·x_{j+D/2} by angle t·base^(−2j/D)."""
    half = x.shape[-1] // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float64) * 2 / x.shape[-1])
    angle = positions.double()[:, None] * inv_freq  # (N, D/2)
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * torch.polar(
        torch.ones_like(angle), angle
    )
    return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)


def plain_encoder(encoder: TransformerEncoder, x, positions, valid=None) -> torch.Tensor:
    """The plain composition of distillation §4 on the encoder's parameters (no dropout)."""

    def rms(module: RMSNorm, h):
        return module.weight * h / torch.sqrt(h.square().mean(-1, keepdim=True) + module.eps)

    batch, length, d = x.shape
    for layer in encoder.layers:
        attention, mlp = layer.attention, layer.mlp
        heads = attention.num_heads
        qkv = attention.qkv_proj(rms(layer.norm1, x)).view(batch, length, 3, heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # (B, H, N, Dh)
        q, k = rope_complex(q, positions), rope_complex(k, positions)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B, H, N, N)
        if valid is not None:
            scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, d)
        x = x + attention.o_proj(out)
        h = rms(layer.norm2, x)
        act = F.gelu if mlp.activation == "gelu" else F.silu
        x = x + mlp.down_proj(act(mlp.gate_proj(h)) * mlp.up_proj(h))
    return rms(encoder.norm, x)


def test_rms_norm_formula():
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(3, 5, 8)
    expected = norm.weight * x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)


def test_rope_matches_complex_rotation():
    rope = RotaryEmbedding(8, base=10000.0, max_positions=64)
    x = torch.randn(2, 3, 7, 8)  # (B, H, N, Dh)
    positions = torch.tensor([0, 0, 1, 5, 5, 9, 63])
    torch.testing.assert_close(rope(x, positions), rope_complex(x, positions))
    batched = positions.expand(2, 7)  # (B, N) time ids
    torch.testing.assert_close(rope(x, batched), rope_complex(x, positions))


@pytest.mark.parametrize(("activation", "chunk"), [("gelu", None), ("silu", 5 * 64)])
def test_encoder_matches_plain_composition(activation, chunk, monkeypatch):
    if chunk is not None:  # MLP rows in chunks of 5 (F = 64): several, the last one short
        monkeypatch.setattr(T, "_CHUNK_ELEMENTS", chunk)
    encoder = make(activation=activation)
    x = torch.randn(3, 12, 16, requires_grad=True)
    positions = torch.arange(4).repeat_interleave(3)  # P = 3 patches per step
    valid = torch.ones(3, 12, dtype=torch.bool)
    valid[1, 2::3] = False
    for mask in (None, valid):
        out = encoder(x, positions, mask)
        expected = plain_encoder(encoder, x, positions, mask)
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
        grad = torch.randn_like(out)
        inputs = [x, *encoder.parameters()]
        got = torch.autograd.grad(out, inputs, grad)
        want = torch.autograd.grad(expected, inputs, grad)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_batched_positions_equal_shared_positions():
    encoder = make()
    x = torch.randn(2, 6, 16)
    positions = torch.arange(3).repeat_interleave(2)
    torch.testing.assert_close(encoder(x, positions), encoder(x, positions.expand(2, 6)))


def test_padding_equals_unpadded_items_alone_and_ignores_invalid_content():
    encoder = make().eval()
    x = torch.randn(2, 12, 16)
    positions = torch.arange(4).repeat_interleave(3)
    valid = torch.ones(2, 12, dtype=torch.bool)
    valid[1, 2::3] = False  # the second item has 2 of 3 patches
    out = encoder(x, positions, valid)
    alone = encoder(x[1:, valid[1]], positions[valid[1]])
    torch.testing.assert_close(out[1, valid[1]], alone[0], rtol=1e-5, atol=1e-5)
    changed = x.clone()
    changed[1, ~valid[1]] = 100.0 * torch.randn(4, 16)
    again = encoder(changed, positions, valid)
    torch.testing.assert_close(again[valid], out[valid], rtol=0, atol=0)


def _reseeded(function):
    """Same dropout mask on every call (gradcheck evaluates the function many times)."""

    def call(*args):
        torch.manual_seed(1)
        return function(*args)

    return call


def test_fused_functions_gradcheck_float64(monkeypatch):
    monkeypatch.setattr(T, "_CHUNK_ELEMENTS", 4 * 6)  # MLP rows in chunks of 4 (F = 6)
    torch.manual_seed(0)
    options = {"dtype": torch.float64, "requires_grad": True}
    x = torch.randn(2, 3, 8, **options)
    norm_weight = torch.randn(8, **options)
    rope = RotaryEmbedding(2, max_positions=8)
    cos, sin = rope.cos_sin(torch.tensor([0, 1, 5]))

    def norm_linear(x, norm_weight, weight, bias):
        return T._NormLinear.apply(x, norm_weight, weight, bias, 1e-6, cos, sin, 4)

    qkv = (torch.randn(24, 8, **options), torch.randn(24, **options))
    assert torch.autograd.gradcheck(norm_linear, (x, norm_weight, *qkv))

    def dropout_linear(a, weight, bias):
        return T._DropoutLinear.apply(a, weight, bias, 0.5, True)

    linear = (torch.randn(5, 8, **options), torch.randn(5, **options))
    assert torch.autograd.gradcheck(_reseeded(dropout_linear), (x, *linear))

    for activation in ("gelu", "silu"):

        def mlp(x, norm_weight, gate_up_w, gate_up_b, down_w, down_b, activation=activation):
            return T._NormGatedMLP.apply(
                x, norm_weight, gate_up_w, gate_up_b, down_w, down_b, 1e-6, activation, 0.5, True
            )

        weights = (
            torch.randn(12, 8, **options),
            torch.randn(12, **options),
            torch.randn(8, 6, **options),
            torch.randn(8, **options),
        )
        assert torch.autograd.gradcheck(_reseeded(mlp), (x, norm_weight, *weights))


def test_keep_mask_rate():
    torch.manual_seed(0)
    drop = T._drop_mask(torch.empty(200_000), 0.1)
    assert drop.dtype == torch.bool
    assert abs(drop.float().mean().item() - 0.1) < 0.005


def test_dropout_is_active_in_training_only():
    encoder = make(dropout=0.5)
    x = torch.randn(2, 6, 16)
    positions = torch.arange(3).repeat_interleave(2)
    encoder.eval()
    torch.testing.assert_close(encoder(x, positions), encoder(x, positions))
    encoder.train()
    assert (encoder(x, positions) - encoder(x, positions)).abs().max() > 0


def test_bf16_autocast_runs_and_stays_close():
    encoder = make()
    x = torch.randn(2, 6, 16)
    positions = torch.arange(3).repeat_interleave(2)
    valid = torch.tensor([[True] * 6, [True, False] * 3])
    reference = encoder(x, positions, valid)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(x, positions, valid)
    assert out.dtype == torch.float32  # the residual stream and the final norm stay float32
    torch.testing.assert_close(out[valid], reference[valid], rtol=0.1, atol=0.1)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in encoder.parameters())


def test_config_errors():
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoder(config=TransformerConfig(d_model=10, num_heads=4))
    with pytest.raises(ValueError, match="max_positions"):
        make(max_positions=4)(torch.randn(1, 5, 16), torch.arange(5))
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoder(config=TransformerConfig(d_model=16, num_heads=2, activation="relu"))
