"""The LDNS presets for MC_Maze and human data hold the published hyperparameters
(specs/ldns.md §2, §4, §5, §7, §8, §12), and the shipped preset folder matches presets/."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from torch import nn

from neuralcli.config.presets import load_preset, preset_dir
from neuralcli.config.schemas import stage_config
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser
from neuralcli.models.layers.s4d import S4D
from neuralcli.models.spike_history import SpikeHistoryGLM
from neuralcli.training.ema import ema_decay
from neuralcli.training.schedule import schedule_steps, warmup_cosine_factor

REPO_PRESETS = Path(__file__).resolve().parents[2] / "presets"
STAGES = {
    "monkey": ("ae", "diffusion", "spike-history"),
    "monkey-angle": ("diffusion",),
    "monkey-velocity": ("diffusion",),
    "human": ("ae", "diffusion"),
}
# Training-split sizes of LDNS §12 (data-sources §3.1, §4): they set the steps per epoch.
N_TRAIN = {"mc_maze": 2008, "human": 8417}


@pytest.mark.parametrize(
    ("preset", "stage"), [(p, s) for p, stages in STAGES.items() for s in stages]
)
def test_every_stage_builds(preset: str, stage: str) -> None:
    config = stage_config(preset, stage)
    assert config.name == f"{stage}-{preset}"


def test_shipped_presets_are_the_repository_presets() -> None:
    shipped = {p.name: p.read_bytes() for p in preset_dir().glob("*.yaml")}
    repository = {p.name: p.read_bytes() for p in REPO_PRESETS.glob("*.yaml")}
    assert set(shipped) == set(repository)
    assert {f"{name}.yaml" for name in STAGES} <= set(shipped)
    for name, content in repository.items():
        assert shipped[name] == content, name


@pytest.mark.parametrize(
    ("preset", "dataset", "n_neurons", "latent", "blocks", "loss"),
    [
        ("monkey", "mc_maze", 182, 16, 4, (0.5, 0.001, 0.2)),  # §2, §4
        ("human", "human", 128, 32, 6, (0.2, 0.001, 0.02)),
    ],
)
def test_autoencoder_sizes_and_losses(preset, dataset, n_neurons, latent, blocks, loss) -> None:
    config = stage_config(preset, "ae")
    assert config.data.dataset == dataset
    model = config.model
    assert (model.n_neurons, model.hidden_channels) == (n_neurons, 256)
    assert (model.latent_channels, model.num_blocks) == (latent, blocks)
    assert model.bidirectional is False  # §2: causal S4 for monkey and human
    assert (config.loss.mask_prob, config.loss.latent_beta, config.loss.latent_td_beta) == loss
    assert config.loss.td_k == 5
    training = config.training
    assert (training.lr, training.weight_decay, training.grad_clip) == (1e-3, 0.01, 2.0)
    assert training.val_every_epochs == 10
    assert training.ema is False


def test_schedules_give_the_published_step_counts() -> None:
    """§12 table: total / warm-up steps, and the LR factor the monkey AE stops at."""
    published = {  # (preset, stage): (epochs, warm-up ep., batch, f, total steps, warm-up steps)
        ("monkey", "ae"): (260, 10, 64, 1.1, 8320, 320),
        ("human", "ae"): (400, 20, 256, 1.5, 13200, 660),
        ("monkey", "diffusion"): (2000, 50, 512, 1.3, 8000, 200),
        ("monkey-angle", "diffusion"): (2000, 50, 512, 1.3, 8000, 200),
        ("monkey-velocity", "diffusion"): (2000, 50, 512, 1.3, 8000, 200),
        ("human", "diffusion"): (2000, 100, 256, 1.3, 66000, 3300),
    }
    for (preset, stage), (epochs, warmup, batch, factor, total, warm) in published.items():
        config = stage_config(preset, stage)
        t = config.training
        assert (t.epochs, t.warmup_epochs, t.batch_size, t.lr_horizon_factor) == (
            epochs,
            warmup,
            batch,
            factor,
        ), (preset, stage)
        n_train = N_TRAIN[load_preset(preset)["data"]["dataset"]]
        steps = schedule_steps(
            n_train,
            batch_size=t.batch_size,
            world_size=1,
            epochs=t.epochs,
            warmup_epochs=t.warmup_epochs,
            lr_horizon_factor=t.lr_horizon_factor,
        )
        assert (steps.steps_per_epoch * t.epochs, steps.warmup_steps) == (total, warm)

    # §12, pitfall 10: the monkey AE used downstream is the epoch-140 checkpoint of the
    # 260-epoch schedule, where the LR factor is ≈ 0.55.
    ae = stage_config("monkey", "ae").training
    steps = schedule_steps(
        N_TRAIN["mc_maze"],
        batch_size=ae.batch_size,
        world_size=1,
        epochs=ae.epochs,
        warmup_epochs=ae.warmup_epochs,
        lr_horizon_factor=ae.lr_horizon_factor,
        max_steps=ae.max_steps,
    )
    assert steps.total_steps == 140 * steps.steps_per_epoch == ae.max_steps
    factor = warmup_cosine_factor(
        steps.total_steps, warmup_steps=steps.warmup_steps, horizon_steps=steps.horizon_steps
    )
    assert factor == pytest.approx(0.55, abs=0.01)
    assert stage_config("human", "ae").training.max_steps is None


@pytest.mark.parametrize(
    ("preset", "condition", "latent", "hidden", "beta"),
    [
        ("monkey", "none", 16, 256, 0.04),  # §7, §8
        ("monkey-angle", "angle", 16, 256, 0.05),
        ("monkey-velocity", "velocity", 16, 256, 0.05),
        ("human", "length", 32, 384, 0.04),
    ],
)
def test_denoiser_sizes_and_losses(preset, condition, latent, hidden, beta) -> None:
    config = stage_config(preset, "diffusion")
    assert config.ae == f"ae-{'human' if preset == 'human' else 'monkey'}"
    assert config.latents.clip is None  # §6: only Lorenz clips
    model = config.model
    assert (model.latent_channels, model.hidden_channels, model.num_blocks) == (latent, hidden, 6)
    assert model.condition == condition
    assert model.output_scale_init == 0.1
    assert (config.loss.loss, config.loss.smooth_l1_beta) == ("smooth_l1", beta)
    assert config.training.ema is True
    assert config.training.grad_clip == 1.0


def test_ema_decays() -> None:
    """§8: monkey decay grows to ≈ 0.9975 after 8000 steps; human is 0.9999 from the start."""
    monkey = stage_config("monkey", "diffusion").training
    human = stage_config("human", "diffusion").training
    decay = ema_decay(8000, min_decay=monkey.ema_min_decay, max_decay=monkey.ema_max_decay)
    assert decay == pytest.approx(0.9975, abs=1e-4)
    assert ema_decay(2, min_decay=human.ema_min_decay, max_decay=human.ema_max_decay) == 0.9999
    assert ema_decay(66000, min_decay=human.ema_min_decay, max_decay=human.ema_max_decay) == 0.9999


def test_spike_history_recipe() -> None:
    """§5: 182 neurons × (20 history + log rate + bias), AdamW lr 0.1, 3000 full-batch epochs."""
    config = stage_config("monkey", "spike-history")
    assert (config.model.n_neurons, config.model.history_bins, config.model.max_count) == (
        182,
        20,
        5,
    )
    assert config.full_batch is True
    t = config.training
    assert (t.epochs, t.lr, t.weight_decay, t.grad_clip, t.warmup_epochs) == (3000, 0.1, 0.01, 0, 0)
    assert warmup_cosine_factor(3000, warmup_steps=0, horizon_steps=3000 * t.lr_horizon_factor) > (
        0.9999
    )
    glm = SpikeHistoryGLM(config=config.model)
    assert glm.weight.shape == (182, 22)


def _reference_size(model: nn.Module, *, gate_rows_per_block: int) -> int:
    """Parameters the reference would have at this size: ours with S4D layers counted as the
    reference's DPLR S4 (LDNS §3.1) and the AE's two unused adaLN gate rows put back.

    Per channel, with state size N (N/2 complex modes) and k output kernels (2 when
    bidirectional): DPLR holds log dt (1), A (N reals), B (N), the rank-1 P (N), C (k·N) and
    D (1); the S4D substitute lacks B and P (§3.2), so 2N per channel fewer.
    """
    total = sum(p.numel() for p in model.parameters())
    layers = [m for m in model.modules() if isinstance(m, S4D)]
    for layer in layers:
        ours = sum(p.numel() for p in layer.parameters())
        channels, state = layer.channels, layer.state_size
        kernels = 2 if layer.bidirectional else 1
        reference = channels * (1 + state + state + state + kernels * state + 1)
        total += reference - ours
    return total + gate_rows_per_block * len(layers)


@pytest.mark.parametrize(
    ("preset", "stage", "published_millions"),
    [
        ("lorenz", "ae", 1.453),  # LDNS §2 table [code]
        ("monkey", "ae", 1.415),
        ("human", "ae", 2.048),
        ("lorenz", "diffusion", 0.179),  # LDNS §7 table [code]
        ("monkey", "diffusion", 2.692),
        ("monkey-angle", "diffusion", 2.697),
        ("monkey-velocity", "diffusion", 2.701),
        ("human", "diffusion", 5.688),
    ],
)
def test_model_sizes_match_the_reference(preset, stage, published_millions) -> None:
    """Rebuilt at the preset's sizes, the model has the reference's parameter count once the
    documented S4D / adaLN differences are accounted for; the tables round to 1000."""
    config = stage_config(preset, stage)
    if stage == "ae":
        model = SpikeAutoencoder(config=config.model)
        gates = 2 * config.model.hidden_channels  # (1, 6C, 1) in the reference, (4, C) here
    else:
        model = Denoiser(config=config.model)
        gates = 0
    reference = _reference_size(model, gate_rows_per_block=gates)
    assert math.isclose(reference / 1e6, published_millions, abs_tol=0.0005)
    ours = sum(p.numel() for p in model.parameters())
    assert ours < reference  # S4D has no B and P
