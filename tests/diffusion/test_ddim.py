import math

import pytest
import torch

from neuralcli.diffusion.ddim import DDIMScheduler
from neuralcli.diffusion.ddpm import DDPMScheduler
from neuralcli.errors import ConfigError


def test_trailing_timesteps_start_at_the_last_training_step():
    scheduler = DDIMScheduler()
    timesteps = scheduler.set_timesteps(50)
    assert timesteps.dtype == torch.int64
    assert timesteps[:3].tolist() == [999, 979, 959]
    assert timesteps[-1].item() == 19
    assert scheduler.set_timesteps(10).tolist() == list(range(999, 0, -100))
    assert scheduler.set_timesteps(1).tolist() == [999]
    assert scheduler.set_timesteps(1000).tolist() == list(range(999, -1, -1))
    assert len(scheduler.set_timesteps()) == DDIMScheduler.default_inference_steps
    for steps in (3, 7, 333, 999):
        values = scheduler.set_timesteps(steps).tolist()
        assert len(values) == len(set(values)) == steps
        assert values[0] == 999 and values == sorted(values, reverse=True)


@pytest.mark.parametrize("steps", [0, 1001, 2.5])
def test_bad_step_counts_are_config_errors(steps):
    with pytest.raises(ConfigError, match="num_inference_steps"):
        DDIMScheduler().set_timesteps(steps)


def test_step_matches_ddim_eq_12_on_numbers():
    scheduler = DDIMScheduler()
    sample = torch.tensor([[[0.8, -0.3]], [[1.5, 0.2]]], dtype=torch.float64)  # (2, 1, 2)
    eps = torch.tensor([[[0.1, -0.9]], [[0.4, 0.6]]], dtype=torch.float64)
    t, prev = 700, 680
    out = scheduler.step(eps, t, sample, prev_timestep=prev)
    a_t, a_prev = scheduler.alpha_bar(t), scheduler.alpha_bar(prev)
    x0 = (sample - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    torch.testing.assert_close(out.prev_sample, expected)
    torch.testing.assert_close(out.pred_original_sample, x0)


def test_deterministic_step_with_true_noise_lands_on_the_forward_marginal():
    # With ε̂ the exact noise of x_t, an η = 0 step to any earlier t' gives x_{t'} built from
    # the same x_0 and ε (DDIM eq. 12 keeps the noise direction).
    scheduler = DDIMScheduler()
    x0 = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(1))
    x_t = scheduler.add_noise(x0, eps, torch.full((4,), 800))
    out = scheduler.step(eps, 800, x_t, prev_timestep=300)
    torch.testing.assert_close(out.prev_sample, scheduler.add_noise(x0, eps, torch.full((4,), 300)))
    final = scheduler.step(eps, 800, x_t, prev_timestep=-1)
    torch.testing.assert_close(final.prev_sample, x0, rtol=1e-4, atol=1e-4)


def test_eta_one_on_consecutive_steps_is_the_ddpm_step():
    ddim, ddpm = DDIMScheduler(), DDPMScheduler()
    sample = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(2))
    eps = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(3))
    for t in (999, 500, 1):
        a = ddim.step(
            eps, t, sample, prev_timestep=t - 1, eta=1.0, generator=torch.Generator().manual_seed(4)
        )
        b = ddpm.step(eps, t, sample, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, rtol=1e-4, atol=1e-4)


def test_eta_zero_is_deterministic_and_eta_adds_noise():
    scheduler = DDIMScheduler()
    sample = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(5))
    eps = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(6))
    first = scheduler.step(
        eps, 500, sample, prev_timestep=480, generator=torch.Generator().manual_seed(0)
    )
    second = scheduler.step(
        eps, 500, sample, prev_timestep=480, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(first.prev_sample, second.prev_sample)
    noisy = scheduler.step(
        eps, 500, sample, prev_timestep=480, eta=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert not torch.allclose(noisy.prev_sample, first.prev_sample)


def test_step_validates_its_timesteps():
    scheduler = DDIMScheduler()
    x = torch.zeros(1, 2, 1)
    with pytest.raises(ValueError, match="prev_timestep"):
        scheduler.step(x, 10, x, prev_timestep=10)
    with pytest.raises(ValueError, match="eta"):
        scheduler.step(x, 10, x, prev_timestep=5, eta=-1.0)
