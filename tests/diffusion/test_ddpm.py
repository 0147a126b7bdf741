import math

import pytest
import torch

from neuralcli.diffusion.ddpm import DDPMScheduler
from neuralcli.errors import ConfigError


def closed_form_alpha_bar(t: int) -> float:
    """ᾱ_t from the spec's definition (LDNS §8), in float64."""
    betas = [1e-4 + (0.02 - 1e-4) * s / 999 for s in range(t + 1)]
    return math.prod(1.0 - b for b in betas)


def test_schedule_constants_match_spec():
    scheduler = DDPMScheduler()
    assert scheduler.betas.dtype == torch.float32
    assert scheduler.betas.shape == (1000,)
    assert scheduler.betas[0].item() == pytest.approx(1e-4)
    assert scheduler.betas[-1].item() == pytest.approx(0.02)
    assert torch.all(scheduler.alphas_cumprod[1:] < scheduler.alphas_cumprod[:-1])
    for t in (0, 10, 500, 999):
        assert scheduler.alpha_bar(t) == pytest.approx(closed_form_alpha_bar(t), rel=1e-4)
    assert scheduler.alpha_bar(-1) == 1.0


def test_invalid_schedule_is_config_error():
    with pytest.raises(ConfigError, match="beta_start"):
        DDPMScheduler(beta_start=0.1, beta_end=0.01)
    with pytest.raises(ConfigError, match="num_train_timesteps"):
        DDPMScheduler(num_train_timesteps=0)


def test_add_noise_mean_and_variance():
    scheduler = DDPMScheduler()
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((3, 20000, 1), 2.0)
    noise = torch.randn(x0.shape, generator=generator)
    timesteps = torch.tensor([0, 400, 999])
    noisy = scheduler.add_noise(x0, noise, timesteps)  # (3, 20000, 1)
    for row, t in enumerate(timesteps.tolist()):
        alpha_bar = closed_form_alpha_bar(t)
        assert noisy[row].mean().item() == pytest.approx(2.0 * math.sqrt(alpha_bar), abs=0.03)
        assert noisy[row].var().item() == pytest.approx(1.0 - alpha_bar, rel=0.05)


def test_add_noise_broadcasts_per_sample_and_keeps_dtype():
    scheduler = DDPMScheduler()
    x0 = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(2))
    timesteps = torch.tensor([0, 1, 500, 999])
    noisy = scheduler.add_noise(x0, noise, timesteps)
    for row, t in enumerate(timesteps.tolist()):
        alpha_bar = scheduler.alpha_bar(t)
        expected = math.sqrt(alpha_bar) * x0[row] + math.sqrt(1 - alpha_bar) * noise[row]
        torch.testing.assert_close(noisy[row], expected)
    half = scheduler.add_noise(x0.bfloat16(), noise.bfloat16(), timesteps)
    assert half.dtype == torch.bfloat16 and half.shape == (4, 5, 3)


def test_set_timesteps_is_all_steps_descending():
    scheduler = DDPMScheduler()
    timesteps = scheduler.set_timesteps()
    assert timesteps.dtype == torch.int64
    assert timesteps.tolist() == list(range(999, -1, -1))
    assert torch.equal(scheduler.set_timesteps(1000), timesteps)
    with pytest.raises(ConfigError, match="ddim"):
        scheduler.set_timesteps(50)


def test_step_matches_spec_closed_form():
    scheduler = DDPMScheduler()
    sample = torch.tensor([[[0.3], [-1.2]], [[2.0], [0.1]]], dtype=torch.float64)  # (2, 2, 1)
    eps = torch.tensor([[[0.5], [0.7]], [[-0.4], [1.1]]], dtype=torch.float64)
    t = 400
    out = scheduler.step(eps, t, sample, generator=torch.Generator().manual_seed(3))
    z = torch.randn(sample.shape, generator=torch.Generator().manual_seed(3)).double()

    beta = 1e-4 + (0.02 - 1e-4) * t / 999
    alpha_bar, alpha_bar_prev = closed_form_alpha_bar(t), closed_form_alpha_bar(t - 1)
    x0 = (sample - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    mean = (math.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar)) * x0 + (
        math.sqrt(1 - beta) * (1 - alpha_bar_prev) / (1 - alpha_bar)
    ) * sample
    sigma = math.sqrt(beta * (1 - alpha_bar_prev) / (1 - alpha_bar))
    torch.testing.assert_close(out.pred_original_sample, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.prev_sample, mean + sigma * z, rtol=1e-5, atol=1e-5)


def test_last_step_adds_no_noise_and_returns_x0():
    scheduler = DDPMScheduler()
    sample = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(4))
    eps = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(5))
    first = scheduler.step(eps, 0, sample, generator=torch.Generator().manual_seed(6))
    second = scheduler.step(eps, 0, sample, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first.prev_sample, second.prev_sample)
    # ᾱ_{-1} = 1 makes the mean x̂_0, up to float32 rounding of 1 − ᾱ_0 against β_0.
    torch.testing.assert_close(first.prev_sample, first.pred_original_sample, rtol=1e-3, atol=1e-3)


def test_step_rejects_skipped_timesteps():
    scheduler = DDPMScheduler()
    x = torch.zeros(1, 2, 1)
    with pytest.raises(ValueError, match="t - 1"):
        scheduler.step(x, 10, x, prev_timestep=5)
    with pytest.raises(ValueError, match="outside"):
        scheduler.step(x, 1000, x)
