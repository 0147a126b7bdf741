"""LDNS denoiser (LDNS §7): identity blocks at init, embeddings, fused block, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from neuralcli.errors import RunDirError
from neuralcli.models.autoencoder import modulated_instance_norm
from neuralcli.models.denoiser import Denoiser, DenoiserBlock, DenoiserConfig, timestep_frequencies
from neuralcli.runtime.checkpoint import save_model

TINY = DenoiserConfig(latent_channels=4, hidden_channels=16, num_blocks=2, state_size=8)


def test_shapes_and_blocks_are_identity_at_init() -> None:
    torch.manual_seed(0)
    model = Denoiser(config=TINY)
    x = torch.randn(3, 20, 4)
    t = torch.tensor([0, 500, 999])
    eps = model(x, t)
    assert eps.shape == (3, 20, 4)
    h = model.conv_in(x)
    embedding = model.time_embedding(t)
    for block in model.blocks:
        torch.testing.assert_close(block(h, embedding), h)
    torch.testing.assert_close(eps, model.conv_out(h))


def test_sinusoidal_embedding_formula() -> None:
    t = torch.tensor([0, 7, 999])
    emb = timestep_frequencies(t, 256)
    k = torch.arange(128).float()
    freqs = torch.exp(-math.log(10000.0) * k / 128)
    torch.testing.assert_close(emb[:, :128], torch.cos(t[:, None].float() * freqs))
    torch.testing.assert_close(emb[:, 128:], torch.sin(t[:, None].float() * freqs))


def test_grouping_rule_and_output_scale() -> None:
    torch.manual_seed(1)
    lorenz = Denoiser(config=DenoiserConfig())
    assert lorenz.conv_in.groups == 8 and lorenz.conv_out.groups == 8
    torch.manual_seed(1)
    reference = Denoiser(config=DenoiserConfig(linear_path_init="default"))
    torch.manual_seed(1)
    scaled = Denoiser(config=DenoiserConfig(linear_path_init="default", output_scale_init=0.1))
    torch.testing.assert_close(scaled.conv_out.weight, 0.1 * reference.conv_out.weight)
    torch.testing.assert_close(scaled.conv_out.bias, 0.1 * reference.conv_out.bias)
    for block in lorenz.blocks:
        assert block.s4.bidirectional  # always bidirectional (LDNS §7 quirk)
    velocity = Denoiser(config=DenoiserConfig(latent_channels=18, hidden_channels=256))
    assert velocity.conv_in.groups == 1


@pytest.mark.parametrize("latent, hidden", [(8, 64), (18, 256)])
def test_identity_linear_path_makes_the_network_start_as_the_identity(latent, hidden) -> None:
    torch.manual_seed(2)
    model = Denoiser(config=DenoiserConfig(latent_channels=latent, hidden_channels=hidden))
    x = torch.randn(3, 20, latent)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 500, 999]))
    torch.testing.assert_close(out, x, atol=1e-4, rtol=1e-4)


def reference_block(block: DenoiserBlock, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """LDNS §7 DenoiserBlock with plain autograd ops (S4D via its own forward)."""
    mod = block.modulation(F.gelu(e))[:, None, :]
    shift_tm, scale_tm, gate_tm, shift_cm, scale_cm, gate_cm = mod.chunk(6, dim=-1)
    x = x + gate_tm * F.gelu(block.s4(modulated_instance_norm(x, shift_tm, scale_tm)))
    h = modulated_instance_norm(x, shift_cm, scale_cm)
    return x + gate_cm * block.mlp_out(F.gelu(block.mlp_in(h)))


@pytest.mark.parametrize("batch", [2, 12])  # Toeplitz rebuilt (T > B) or kept (T <= B)
def test_fused_block_matches_reference(batch: int) -> None:
    torch.manual_seed(3)
    block = DenoiserBlock(channels=8, embedding_channels=2, state_size=8)
    with torch.no_grad():
        block.modulation.weight.normal_()
        block.modulation.bias.normal_()
    x = torch.randn(batch, 10, 8, requires_grad=True)
    e = torch.randn(batch, 2)
    fused = block(x, e)
    fused.square().sum().backward()
    fused_grads = [p.grad.clone() for p in block.parameters()] + [x.grad.clone()]
    block.zero_grad()
    x.grad = None
    expected = reference_block(block, x, e)
    expected.square().sum().backward()
    reference_grads = [p.grad for p in block.parameters()] + [x.grad]
    torch.testing.assert_close(fused, expected, atol=1e-4, rtol=1e-4)
    for got, want in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)


def test_long_input_uses_fft_path() -> None:
    torch.manual_seed(4)
    model = Denoiser(config=TINY)
    with torch.no_grad():
        for block in model.blocks:
            block.modulation.weight.normal_()
    x = torch.randn(1, 600, 4)
    t = torch.tensor([10])
    with torch.no_grad():
        long = model(x, t)
        for block in model.blocks:
            block.s4.direct_max_length = 600
        direct = model(x, t)
    torch.testing.assert_close(long, direct, atol=1e-3, rtol=1e-3)


def test_lorenz_parameter_count_matches_spec() -> None:
    model = Denoiser(config=DenoiserConfig())
    count = sum(p.numel() for p in model.parameters())
    # S4D lacks DPLR's B and P (128 reals per channel per layer): 0.147 M vs 0.179 M [code].
    assert abs(count - 0.179e6) / 0.179e6 < 0.20
    assert round((count + 128 * 64 * 4) / 1e3) == 179


def test_bf16_autocast_forward() -> None:
    torch.manual_seed(5)
    model = Denoiser(config=TINY)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps = model(torch.randn(2, 16, 4), torch.tensor([1, 2]))
    assert torch.isfinite(eps).all()


def test_config_validation_names_field() -> None:
    for field, value in [("hidden_channels", 30), ("num_blocks", 0), ("output_scale_init", 0.0)]:
        with pytest.raises(ValueError, match=field):
            DenoiserConfig(**{field: value})


def test_from_pretrained_round_trip_and_wrong_kind(tmp_path) -> None:
    torch.manual_seed(6)
    model = Denoiser(config=TINY)
    save_model(tmp_path / "ok", model.state_dict(), kind="denoiser", config=TINY)
    loaded = Denoiser.from_pretrained(tmp_path / "ok")
    assert not loaded.training
    x, t = torch.randn(2, 8, 4), torch.tensor([3, 4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), model(x, t))
    save_model(tmp_path / "ae", model.state_dict(), kind="autoencoder", config=TINY)
    with pytest.raises(RunDirError, match="denoiser"):
        Denoiser.from_pretrained(tmp_path / "ae")
    (tmp_path / "ok" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunDirError, match="corrupt"):
        Denoiser.from_pretrained(tmp_path / "ok")
