import contextlib

import pytest
import torch
from torch import nn

from neuralcli.diffusion.ddim import DDIMScheduler
from neuralcli.diffusion.ddpm import DDPMScheduler
from neuralcli.diffusion.sampling import make_scheduler, sample_latents
from neuralcli.errors import ConfigError

MU, STD = 1.5, 0.5


class GaussianOracle(nn.Module):
    """Exact E[ε | x_t] for data x_0 ~ N(MU, STD²) elementwise, under the scheduler's ᾱ_t."""

    def __init__(self, scheduler):
        super().__init__()
        self.alphas_cumprod = scheduler.alphas_cumprod.double()
        self.calls = 0

    def forward(self, x, timesteps):
        self.calls += 1
        alpha_bar = self.alphas_cumprod[timesteps].view(-1, 1, 1)  # (B, 1, 1)
        x = x.double()
        eps = (
            (1 - alpha_bar).sqrt()
            * (x - alpha_bar.sqrt() * MU)
            / (alpha_bar * STD**2 + 1 - alpha_bar)
        )
        return eps.float()  # (B, T, C)


class TinyDenoiser(nn.Module):
    """A small length-agnostic ε-model mixing neighbouring bins, with a timestep bias.

    Elementwise on purpose: it keeps 1000-step loops fast on a busy 2-core machine.
    """

    def __init__(self, channels):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.here = nn.Parameter(torch.randn(channels, generator=generator))
        self.before = nn.Parameter(torch.randn(channels, generator=generator))
        self.time = nn.Parameter(torch.randn(1000, channels, generator=generator))

    def forward(self, x, timesteps):
        mixed = self.here * x + self.before * x.roll(1, dims=1)  # (B, T, C)
        return torch.tanh(mixed + self.time[timesteps][:, None, :])


def ddim_std_factor(scheduler, timesteps, std):
    """Sample std / STD that exact-ε DDIM (η = 0) gives for N(MU, std²) data.

    In x̄ = x/√ᾱ, σ = √((1 − ᾱ)/ᾱ) coordinates DDIM is Euler on dx̄/dσ = ε̂ = σ(x̄ − μ)/(std² + σ²),
    so the spread x̄ − μ is multiplied by 1 + σ_t(σ_prev − σ_t)/(std² + σ_t²) per step; the
    exact flow would give √((std² + σ_prev²)/(std² + σ_t²)). This is DDIM's own bias.
    """
    alpha_bar = [scheduler.alpha_bar(t) for t in timesteps] + [1.0]
    sigma = [((1 - a) / a) ** 0.5 for a in alpha_bar]
    spread = 1 / alpha_bar[0] ** 0.5  # z_T ~ N(0, 1) in x̄ coordinates
    for current, prev in zip(sigma[:-1], sigma[1:], strict=True):
        spread *= 1 + current * (prev - current) / (std**2 + current**2)
    return spread / std


def draw_oracle(name, steps, n=2000):
    scheduler = make_scheduler(name)
    return sample_latents(
        GaussianOracle(scheduler),
        scheduler,
        n=n,
        length=4,
        channels=2,
        device="cpu",
        num_inference_steps=steps,
        batch_size=n,
        generator=torch.Generator().manual_seed(0),
    )  # (n, 4, 2)


@pytest.mark.parametrize("name, steps", [("ddpm", None), ("ddim", 200)])
def test_oracle_samples_reproduce_the_gaussian(name, steps):
    samples = draw_oracle(name, steps)
    assert samples.shape == (2000, 4, 2) and samples.dtype == torch.float32
    assert samples.mean().item() == pytest.approx(MU, abs=0.02)
    assert samples.std().item() == pytest.approx(STD, rel=0.02)


@pytest.mark.parametrize("steps", [10, 50])
def test_few_step_ddim_has_only_its_first_order_bias(steps):
    samples = draw_oracle("ddim", steps)
    factor = ddim_std_factor(DDIMScheduler(), DDIMScheduler().set_timesteps(steps).tolist(), STD)
    assert samples.mean().item() == pytest.approx(MU, abs=0.02)
    assert samples.std().item() == pytest.approx(STD * factor, rel=0.02)
    if steps == 50:  # DDIM-50 vs DDPM-1000: the spread shrinks by 5.7 % at STD = 0.5
        assert 0.94 < factor < 0.95
        assert samples.std().item() == pytest.approx(STD, rel=0.07)


def test_ddim_eta_one_also_reproduces_the_gaussian():
    scheduler = DDIMScheduler()
    model = GaussianOracle(scheduler)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 2, 2, generator=generator)
    timesteps = scheduler.set_timesteps(500).tolist()
    for i, t in enumerate(timesteps):
        prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        eps = model(x, torch.full((x.shape[0],), t))
        x = scheduler.step(eps, t, x, prev_timestep=prev, eta=1.0, generator=generator).prev_sample
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(STD, rel=0.03)


@pytest.mark.parametrize("name, steps", [("ddpm", None), ("ddim", 20)])
def test_samples_reproducible_and_independent_of_batch_size(name, steps):
    model = TinyDenoiser(3).eval()
    scheduler = make_scheduler(name)

    def draw(batch_size, seed=7):
        return sample_latents(
            model,
            scheduler,
            n=5,
            length=6,
            channels=3,
            device="cpu",
            num_inference_steps=steps,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(seed),
        )

    reference = draw(5)
    torch.testing.assert_close(draw(5), reference, rtol=0, atol=0)
    torch.testing.assert_close(draw(2), reference, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(draw(5, seed=8), reference)


def test_any_length_batches_autocast_and_progress():
    model = TinyDenoiser(2).eval()
    scheduler = DDIMScheduler()
    progress = []
    entered = []

    @contextlib.contextmanager
    def autocast():
        entered.append(True)
        yield

    for length in (1, 7, 300):
        out = sample_latents(
            model,
            scheduler,
            n=3,
            length=length,
            channels=2,
            device=torch.device("cpu"),
            num_inference_steps=4,
            batch_size=2,
            generator=torch.Generator().manual_seed(0),
            autocast=autocast,
            on_step=lambda done, total: progress.append((done, total)),
        )
        assert out.shape == (3, length, 2)
        assert torch.isfinite(out).all()
    assert progress[:4] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(entered) == 3 * 4 * 2  # lengths × steps × chunks


def test_model_sees_int64_timesteps_and_chunks():
    seen = []

    def model(x, timesteps):
        seen.append((tuple(x.shape), timesteps.dtype, timesteps.unique().tolist()))
        return torch.zeros_like(x)

    sample_latents(
        model,
        DDIMScheduler(),
        n=5,
        length=3,
        channels=1,
        device="cpu",
        num_inference_steps=2,
        batch_size=3,
    )
    assert seen == [
        ((3, 3, 1), torch.int64, [999]),
        ((2, 3, 1), torch.int64, [999]),
        ((3, 3, 1), torch.int64, [499]),
        ((2, 3, 1), torch.int64, [499]),
    ]


def test_make_scheduler_and_argument_errors():
    assert isinstance(make_scheduler("ddpm"), DDPMScheduler)
    ddim = make_scheduler("DDIM", num_train_timesteps=100, beta_start=1e-3, beta_end=0.05)
    assert isinstance(ddim, DDIMScheduler) and ddim.num_train_timesteps == 100
    with pytest.raises(ConfigError, match="'euler'.*ddpm, ddim"):
        make_scheduler("euler")
    with pytest.raises(ConfigError, match="length"):
        sample_latents(lambda x, t: x, DDIMScheduler(), n=1, length=0, channels=1, device="cpu")
    with pytest.raises(ConfigError, match="ddim"):
        sample_latents(
            lambda x, t: x,
            DDPMScheduler(),
            n=1,
            length=2,
            channels=1,
            device="cpu",
            num_inference_steps=10,
        )
