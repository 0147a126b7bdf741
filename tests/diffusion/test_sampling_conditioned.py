"""Conditioned sampling (LDNS §9): angle, velocity and mask reach the model at every step."""

import pytest
import torch

from neuralcli.diffusion.ddim import DDIMScheduler
from neuralcli.diffusion.sampling import make_scheduler, sample_latents
from neuralcli.errors import ConfigError
from neuralcli.models.denoiser import Denoiser, DenoiserConfig


def tiny_denoiser(condition: str) -> Denoiser:
    torch.manual_seed(0)
    model = Denoiser(
        config=DenoiserConfig(
            latent_channels=2,
            hidden_channels=8,
            num_blocks=1,
            state_size=4,
            condition=condition,
            linear_path_init="default",
        )
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # as if trained: the adaLN modulations read the embedding
        for block in model.blocks:
            block.modulation.weight.copy_(
                0.5 * torch.randn(block.modulation.weight.shape, generator=generator)
            )
    return model.eval()


def draw(model, name="ddim", steps=3, n=4, seed=0, batch_size=512, **kwargs):
    return sample_latents(
        model,
        make_scheduler(name),
        n=n,
        channels=2,
        device="cpu",
        num_inference_steps=steps,
        batch_size=batch_size,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def test_angle_conditioned_samples_follow_the_angle():
    model = tiny_denoiser("angle")
    angles = torch.tensor([0.0, 1.5, -1.5, 3.0])
    samples = draw(model, length=9, angle=angles)
    assert samples.shape == (4, 9, 2) and torch.isfinite(samples).all()
    torch.testing.assert_close(draw(model, length=9, angle=angles), samples, rtol=0, atol=0)
    # Same noise, other angles: other samples; the per-sample angle stays with its sample.
    assert (draw(model, length=9, angle=angles + 1.0) - samples).abs().max() > 1e-3
    torch.testing.assert_close(
        draw(model, length=9, angle=angles, batch_size=3), samples, rtol=1e-5, atol=1e-5
    )


def test_velocity_sets_the_length_and_is_given_clean_at_every_step():
    model = tiny_denoiser("velocity")
    velocity = torch.randn(4, 11, 2, generator=torch.Generator().manual_seed(2))
    samples = draw(model, velocity=velocity)  # no length: T comes from the velocity
    assert samples.shape == (4, 11, 2)
    assert (draw(model, velocity=velocity.flip(1)) - samples).abs().max() > 1e-3
    torch.testing.assert_close(
        draw(model, velocity=velocity, batch_size=3), samples, rtol=1e-5, atol=1e-5
    )
    seen = []

    def recording(x, timesteps, velocity):
        seen.append(velocity.clone())
        return torch.zeros_like(x)

    draw(recording, velocity=velocity, steps=4)
    assert len(seen) == 4 and all(torch.equal(v, velocity) for v in seen)


def test_mask_conditioned_samples():
    model = tiny_denoiser("length")
    mask = torch.zeros(2, 16)
    mask[0, 4:12] = 1.0
    mask[1, 1:15] = 1.0
    samples = draw(model, n=2, mask=mask)
    assert samples.shape == (2, 16, 2) and torch.isfinite(samples).all()
    assert (draw(model, n=2, mask=torch.ones(2, 16)) - samples).abs().max() > 1e-3


def conditioned_oracle(x, timesteps, angle=None, velocity=None, mask=None):
    """A cheap ε-model whose output moves with whichever condition it gets (for 1000 steps)."""
    shift = torch.zeros_like(x)
    if angle is not None:
        shift = shift + torch.cos(angle)[:, None, None]
    if velocity is not None:
        shift = shift + velocity.sum(-1, keepdim=True)
    if mask is not None:
        shift = shift + mask[..., None]
    return 0.5 * torch.tanh(x - shift)


@pytest.mark.parametrize(
    "name, first, second",
    [
        ("angle", torch.zeros(2), torch.full((2,), torch.pi)),
        ("velocity", torch.zeros(2, 5, 2), torch.ones(2, 5, 2)),
        ("mask", torch.ones(2, 5), torch.zeros(2, 5)),
    ],
)
def test_ddpm_sampling_uses_each_condition(name, first, second):
    length = None if name != "angle" else 5
    a = draw(conditioned_oracle, name="ddpm", steps=None, n=2, length=length, **{name: first})
    b = draw(conditioned_oracle, name="ddpm", steps=None, n=2, length=length, **{name: second})
    assert a.shape == b.shape == (2, 5, 2)
    assert (a - b).abs().max() > 1e-2


def test_unconditional_any_length_sampling_still_works():
    model = tiny_denoiser("none")
    for length in (1, 300):
        assert draw(model, length=length, n=2).shape == (2, length, 2)


def test_condition_shape_errors():
    model = tiny_denoiser("velocity")
    velocity = torch.zeros(4, 7, 2)
    with pytest.raises(ConfigError, match="length=8"):
        draw(model, length=8, velocity=velocity)
    with pytest.raises(ConfigError, match="n=3"):
        draw(model, n=3, velocity=velocity)
    with pytest.raises(ConfigError, match=r"\(n, T, 2\)"):
        draw(model, velocity=torch.zeros(4, 7))
    with pytest.raises(ConfigError, match="length"):
        sample_latents(model, DDIMScheduler(), n=1, channels=2, device="cpu")
    assert draw(model, length=7, velocity=velocity).shape == (4, 7, 2)
