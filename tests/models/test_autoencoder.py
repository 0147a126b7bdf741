"""LDNS autoencoder (LDNS §2): shapes, decoder structure, fused block, counts, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from neuralcli.errors import RunDirError
from neuralcli.models.autoencoder import (
    AEBlock,
    AutoencoderConfig,
    SpikeAutoencoder,
    modulated_instance_norm,
)
from neuralcli.runtime.checkpoint import save_model

TINY = AutoencoderConfig(n_neurons=6, hidden_channels=8, latent_channels=2, num_blocks=2)

# DPLR S4 holds B and P (32 complex each per channel, 128 reals) that S4D does not; the AE
# also keeps the two unused adaLN gate rows. Adding them back must give the spec's count.
DPLR_EXTRA_PER_CHANNEL = 128


def test_shapes_and_positive_rates() -> None:
    torch.manual_seed(0)
    model = SpikeAutoencoder(config=TINY)
    spikes = torch.poisson(torch.full((3, 20, 6), 0.5))
    out = model(spikes)
    assert out.rates.shape == (3, 20, 6) and out.latents.shape == (3, 20, 2)
    assert (out.rates > 0).all()
    torch.testing.assert_close(model.encode(spikes), out.latents)
    torch.testing.assert_close(model.decode(out.latents), out.rates)


def test_decoder_is_pointwise_in_time_and_grouped() -> None:
    torch.manual_seed(1)
    model = SpikeAutoencoder(config=TINY)
    latents = torch.randn(1, 10, 2)
    changed = latents.clone()
    changed[0, 4, 1] += 3.0
    diff = (model.decode(changed) - model.decode(latents)).abs().sum(-1)[0]  # (T,)
    assert diff[4] > 0 and torch.count_nonzero(diff) == 1
    # groups = d: latent j reads/drives only its own C/d hidden channels
    dense = model.unbottleneck.dense_weight()  # (C, d)
    assert torch.count_nonzero(dense[:4, 1]) == 0 and torch.count_nonzero(dense[4:, 0]) == 0
    dense = model.bottleneck.dense_weight()  # (d, C)
    assert torch.count_nonzero(dense[0, 4:]) == 0 and torch.count_nonzero(dense[1, :4]) == 0


def reference_block(block: AEBlock, x: torch.Tensor) -> torch.Tensor:
    """LDNS §2 AEBlock written out with plain autograd ops (S4D via its own forward)."""
    shift_tm, scale_tm, shift_cm, scale_cm = block.modulation.unbind(0)
    h = block.s4(modulated_instance_norm(x, shift_tm, scale_tm))
    x = x + F.gelu(h) * block.post_scale + block.post_bias
    h = modulated_instance_norm(x, shift_cm, scale_cm)
    return x + block.mlp_out(F.gelu(block.mlp_in(h)))


@pytest.mark.parametrize(("batch", "bidirectional"), [(2, True), (12, False)])
def test_fused_block_matches_reference(batch: int, bidirectional: bool) -> None:
    torch.manual_seed(2)
    block = AEBlock(channels=8, bidirectional=bidirectional, state_size=8)
    with torch.no_grad():
        block.modulation.normal_()  # non-zero adaLN so every path is exercised
    x = torch.randn(batch, 10, 8, requires_grad=True)
    fused = block(x)
    fused.square().sum().backward()
    fused_grads = [p.grad.clone() for p in block.parameters()] + [x.grad.clone()]
    block.zero_grad()
    x.grad = None
    expected = reference_block(block, x)
    expected.square().sum().backward()
    reference_grads = [p.grad for p in block.parameters()] + [x.grad]
    torch.testing.assert_close(fused, expected, atol=1e-4, rtol=1e-4)
    for got, want in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-3)


def test_lorenz_parameter_count_matches_spec() -> None:
    model = SpikeAutoencoder(config=AutoencoderConfig())
    count = sum(p.numel() for p in model.parameters())
    # S4D is smaller than DPLR S4: 1.320 M here vs 1.453 M [code], i.e. within 10 %.
    assert abs(count - 1.453e6) / 1.453e6 < 0.10
    unused_gates = 2 * 256 * 4
    restored = count + DPLR_EXTRA_PER_CHANNEL * 256 * 4 + unused_gates
    assert round(restored / 1e3) == 1453


def test_parameter_groups_split_ssm_parameters() -> None:
    model = SpikeAutoencoder(config=TINY)
    decay, no_decay = model.parameter_groups(0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    ids = [id(p) for p in decay["params"]] + [id(p) for p in no_decay["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    expected = {id(p) for block in model.blocks for p in block.s4.ssm_parameters()}
    assert {id(p) for p in no_decay["params"]} == expected


def test_config_validation_names_field() -> None:
    for field, value in [("n_neurons", 0), ("latent_channels", -1), ("state_size", 7)]:
        with pytest.raises(ValueError, match=field):
            AutoencoderConfig(**{field: value})
    with pytest.raises(ValueError, match="bidirectional"):
        AutoencoderConfig(bidirectional="yes")  # type: ignore[arg-type]


def test_from_pretrained_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    model = SpikeAutoencoder(config=TINY)
    save_model(tmp_path, model.state_dict(), kind="autoencoder", config=TINY)
    loaded = SpikeAutoencoder.from_pretrained(tmp_path)
    assert not loaded.training and loaded.config == TINY
    spikes = torch.poisson(torch.full((2, 12, 6), 0.5))
    with torch.no_grad():
        torch.testing.assert_close(loaded(spikes).rates, model(spikes).rates)


def test_from_pretrained_rejects_bad_run_dirs(tmp_path) -> None:
    model = SpikeAutoencoder(config=TINY)
    wrong = tmp_path / "wrong"
    save_model(wrong, model.state_dict(), kind="denoiser", config=TINY)
    with pytest.raises(RunDirError, match="autoencoder"):
        SpikeAutoencoder.from_pretrained(wrong)
    corrupt = tmp_path / "corrupt"
    save_model(corrupt, model.state_dict(), kind="autoencoder", config=TINY)
    (corrupt / "model.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RunDirError, match="corrupt"):
        SpikeAutoencoder.from_pretrained(corrupt)
    mismatch = tmp_path / "mismatch"
    save_model(mismatch, model.state_dict(), kind="autoencoder", config=TINY)
    meta = json.loads((mismatch / "model.json").read_text(encoding="utf-8"))
    meta["config"]["hidden_channels"] = 16
    (mismatch / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(RunDirError, match="do not match"):
        SpikeAutoencoder.from_pretrained(mismatch)
    with pytest.raises(RunDirError):
        SpikeAutoencoder.from_pretrained(tmp_path / "missing")


def test_bf16_autocast_training_step() -> None:
    torch.manual_seed(4)
    model = SpikeAutoencoder(config=TINY)
    spikes = torch.poisson(torch.full((2, 16, 6), 0.5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(spikes)
    out.rates.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    block = model.blocks[0]
    assert block.mlp_in.weight.grad.dtype == torch.float32
