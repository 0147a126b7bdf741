"""Conditioned LDNS denoisers (LDNS §7, §9): angle embedding, velocity and mask channels."""

from __future__ import annotations

import json

import pytest
import torch

from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.runtime.checkpoint import save_model

TINY = dict(latent_channels=4, hidden_channels=16, num_blocks=2, state_size=8)


def conditions_for(condition: str, batch: int, length: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    if condition == "angle":
        return {"angle": (torch.rand(batch, generator=generator) * 2 - 1) * torch.pi}
    if condition == "velocity":
        return {"velocity": torch.randn(batch, length, 2, generator=generator)}
    if condition == "length":
        mask = torch.zeros(batch, length)
        mask[:, 3:-3] = 1.0
        return {"mask": mask}
    return {}


def perturb_blocks(model: Denoiser) -> None:
    """Give the zero-initialised adaLN modulations random weights (as training would)."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for block in model.blocks:
            block.modulation.weight.copy_(
                0.3 * torch.randn(block.modulation.weight.shape, generator=generator)
            )
            block.modulation.bias.copy_(
                0.3 * torch.randn(block.modulation.bias.shape, generator=generator)
            )


@pytest.mark.parametrize("condition", ["none", "angle", "velocity", "length"])
def test_shapes_and_blocks_are_identity_at_init(condition: str) -> None:
    torch.manual_seed(0)
    config = DenoiserConfig(**TINY, condition=condition)
    model = Denoiser(config=config)
    x, t = torch.randn(3, 20, 4), torch.tensor([0, 500, 999])
    conditions = conditions_for(condition, 3, 20)
    with torch.no_grad():
        eps = model(x, t, **conditions)
    assert eps.shape == (3, 20, 4)
    extra = {"velocity": 2, "length": 1}.get(condition, 0)
    assert config.input_channels == 4 + extra
    assert model.conv_in.weight.shape[1] * model.conv_in.groups == 4 + extra
    assert model.conv_out.weight.shape[0] == 4 + extra
    # The identity linear path and identity blocks: ε̂ = x_t at init, whatever the condition.
    torch.testing.assert_close(eps, x, atol=1e-4, rtol=1e-4)
    inputs = x
    if condition == "velocity":
        inputs = torch.cat((x, conditions["velocity"]), dim=-1)
    elif condition == "length":
        inputs = torch.cat((x, conditions["mask"][..., None]), dim=-1)
    with torch.no_grad():
        h = model.conv_in(inputs)
        embedding = model.time_embedding(t)
        if condition == "angle":
            embedding = embedding + model.angle_embedding(conditions["angle"])
        for block in model.blocks:
            torch.testing.assert_close(block(h, embedding), h)


def test_published_sizes_have_the_spec_parameter_counts_and_groups() -> None:
    monkey = dict(latent_channels=16, hidden_channels=256, num_blocks=6)
    expected = {"none": 2.692, "angle": 2.697, "velocity": 2.701}
    groups = {"none": 16, "angle": 16, "velocity": 1}
    for condition, millions in expected.items():
        model = Denoiser(config=DenoiserConfig(**monkey, condition=condition))
        count = sum(p.numel() for p in model.parameters())
        # S4D lacks DPLR's B and P: 128 reals per channel per block (as for Lorenz).
        assert round((count + 128 * 256 * 6) / 1e6, 3) == millions
        assert model.conv_in.groups == model.conv_out.groups == groups[condition]
    human = Denoiser(
        config=DenoiserConfig(
            latent_channels=32, hidden_channels=384, num_blocks=6, condition="length"
        )
    )
    count = sum(p.numel() for p in human.parameters())
    assert round((count + 128 * 384 * 6) / 1e6, 3) == 5.688
    assert human.conv_in.groups == 1


def test_angle_changes_the_output_once_the_blocks_are_trained() -> None:
    torch.manual_seed(1)
    model = Denoiser(config=DenoiserConfig(**TINY, condition="angle"))
    x, t = torch.randn(2, 12, 4), torch.tensor([100, 100])
    first, second = torch.tensor([0.0, 0.0]), torch.tensor([2.0, 2.0])
    with torch.no_grad():
        # adaLN-Zero: at init no block reads the embedding, so the angle cannot matter yet.
        torch.testing.assert_close(model(x, t, angle=first), model(x, t, angle=second))
        perturb_blocks(model)
        a, b = model(x, t, angle=first), model(x, t, angle=second)
        full_turn = model(x, t, angle=first + 2 * torch.pi)
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(a, full_turn, atol=1e-4, rtol=1e-4)  # θ enters as (cos θ, sin θ)


def test_velocity_and_mask_are_read_and_their_outputs_sliced_off() -> None:
    for condition, name in (("velocity", "velocity"), ("length", "mask")):
        torch.manual_seed(2)
        config = DenoiserConfig(**TINY, condition=condition, linear_path_init="default")
        model = Denoiser(config=config)
        x, t = torch.randn(2, 10, 4), torch.tensor([5, 900])
        given = conditions_for(condition, 2, 10)[name]
        with torch.no_grad():
            out = model(x, t, **{name: given})
            changed = model(x, t, **{name: given + 1.0})
            h = model.conv_in(torch.cat((x, given.reshape(2, 10, -1)), dim=-1))
            embedding = model.time_embedding(t)
            for block in model.blocks:
                h = block(h, embedding)
            full = model.conv_out(h)  # (B, T, Cin)
        assert out.shape == (2, 10, 4) and full.shape[-1] == config.input_channels
        torch.testing.assert_close(out, full[..., :4])
        assert (out - changed).abs().max() > 1e-4


def test_fused_and_fft_paths_agree_with_a_velocity_condition() -> None:
    torch.manual_seed(3)
    model = Denoiser(config=DenoiserConfig(**TINY, condition="velocity"))
    perturb_blocks(model)
    x, v, t = torch.randn(1, 600, 4), torch.randn(1, 600, 2), torch.tensor([10])
    with torch.no_grad():
        long = model(x, t, velocity=v)
        for block in model.blocks:
            block.s4.direct_max_length = 600
        direct = model(x, t, velocity=v)
    torch.testing.assert_close(long, direct, atol=1e-3, rtol=1e-3)


def test_missing_or_foreign_conditions_are_errors() -> None:
    x, t = torch.randn(2, 6, 4), torch.tensor([1, 2])
    angle_model = Denoiser(config=DenoiserConfig(**TINY, condition="angle"))
    with pytest.raises(ValueError, match="pass angle="):
        angle_model(x, t)
    with pytest.raises(ValueError, match="velocity"):
        angle_model(x, t, angle=torch.zeros(2), velocity=torch.zeros(2, 6, 2))
    with pytest.raises(ValueError, match=r"angle must have shape \(2,\)"):
        angle_model(x, t, angle=torch.zeros(3))
    plain = Denoiser(config=DenoiserConfig(**TINY))
    with pytest.raises(ValueError, match="conditioned on 'none'"):
        plain(x, t, mask=torch.ones(2, 6))
    velocity_model = Denoiser(config=DenoiserConfig(**TINY, condition="velocity"))
    with pytest.raises(ValueError, match="velocity must have shape"):
        velocity_model(x, t, velocity=torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="condition must be one of"):
        DenoiserConfig(condition="speed")


def test_unconditional_state_dict_and_old_checkpoints_are_unchanged(tmp_path) -> None:
    torch.manual_seed(4)
    model = Denoiser(config=DenoiserConfig(**TINY))
    keys = set(model.state_dict())
    assert not any(key.startswith("angle_embedding") for key in keys)
    angle_keys = set(Denoiser(config=DenoiserConfig(**TINY, condition="angle")).state_dict())
    assert angle_keys - keys == {
        "angle_embedding.mlp.0.weight",
        "angle_embedding.mlp.0.bias",
        "angle_embedding.mlp.2.weight",
        "angle_embedding.mlp.2.bias",
    }
    # A model.json written before conditioning existed has no "condition" key.
    save_model(tmp_path, model.state_dict(), kind="denoiser", config=DenoiserConfig(**TINY))
    meta_path = tmp_path / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["condition"]
    meta_path.write_text(json.dumps(meta))
    loaded = Denoiser.from_pretrained(tmp_path)
    assert loaded.config.condition == "none"
    x, t = torch.randn(2, 8, 4), torch.tensor([3, 4])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t), model(x, t))


def test_conditioned_round_trip(tmp_path) -> None:
    torch.manual_seed(6)
    config = DenoiserConfig(**TINY, condition="angle")
    model = Denoiser(config=config)
    perturb_blocks(model)
    save_model(tmp_path, model.state_dict(), kind="denoiser", config=config)
    loaded = Denoiser.from_pretrained(tmp_path)
    assert loaded.config == config
    x, t, angle = torch.randn(2, 8, 4), torch.tensor([3, 4]), torch.tensor([0.5, -2.0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, t, angle=angle), model(x, t, angle=angle))
