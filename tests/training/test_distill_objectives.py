import math

import pytest
import torch
from torch import nn

from neuralcli.data.paired import PairedBatch
from neuralcli.errors import ConfigError
from neuralcli.models.lfp_encoder import LfpEncoder, LfpEncoderConfig
from neuralcli.models.spike_teacher import SpikeTeacher, SpikeTeacherConfig, TeacherOutput
from neuralcli.training.distill_objective import (
    DistillationObjective,
    DistillLossConfig,
    alignment_term,
)
from neuralcli.training.lfp_objective import LfpLossConfig, LfpReconstructionObjective
from neuralcli.training.masking import random_token_mask
from neuralcli.training.teacher_objective import TeacherLossConfig, TeacherObjective

UNITS = {"u0": 20, "u1": 11}
CHANNELS = {"c0": 20, "c1": 13}
SESSION_MAP = torch.tensor([0, 1])  # dataset session i is vocabulary entry i


def make_teacher(seed: int = 0, sessions=UNITS, **overrides) -> SpikeTeacher:
    torch.manual_seed(seed)
    config = SpikeTeacherConfig(
        patch_size=8,
        d_model=32,
        num_layers=2,
        num_heads=4,
        predictor_d_model=16,
        predictor_layers=1,
        predictor_heads=2,
        **overrides,
    )
    return SpikeTeacher(config=config, sessions=sessions)


def make_encoder(seed: int = 0, sessions=CHANNELS, **overrides) -> LfpEncoder:
    torch.manual_seed(seed)
    values = dict(patch_size=8, d_model=32, num_layers=2, num_heads=4)
    values.update(overrides)
    return LfpEncoder(config=LfpEncoderConfig(**values), sessions=sessions)


def make_batch(seed: int = 0, steps: int = 20) -> PairedBatch:
    """Synthetic paired batch of 4 items, sessions 0, 1, 0, 1 (zero-padded like collate).

    Spikes are Poisson with a per-unit rate; the LFP is a per-channel sine mixture; both
    follow a shared slow latent, so the teacher and the student see related signals.
    """
    generator = torch.Generator().manual_seed(seed)
    session = torch.tensor([0, 1, 0, 1])
    n_units = torch.tensor([UNITS["u0"], UNITS["u1"]])[session]
    n_channels = torch.tensor([CHANNELS["c0"], CHANNELS["c1"]])[session]
    time = torch.arange(steps, dtype=torch.float32)
    phase = torch.rand(4, 1, 1, generator=generator) * 6.28
    latent = torch.sin(0.3 * time[None, :, None] + phase)  # (B, T, 1)
    unit_gain = torch.rand(1, 1, 20, generator=generator)
    rates = torch.exp(-1.0 + unit_gain * latent)  # (B, T, U)
    spikes = torch.poisson(rates, generator=generator).long()  # (B, T, U)
    channel_gain = torch.randn(1, 1, 20, generator=generator)
    lfp = channel_gain * latent + 0.1 * torch.randn(4, steps, 20, generator=generator)
    for b in range(4):
        spikes[b, :, n_units[b] :] = 0
        lfp[b, :, n_channels[b] :] = 0.0
    return PairedBatch(
        spikes=spikes,
        lfp=lfp,
        velocity=torch.zeros(4, steps, 2),
        n_channels=n_channels,
        n_units=n_units,
        session=session,
        segment_id=torch.arange(4),
    )


def with_padding_changed(batch: PairedBatch) -> PairedBatch:
    spikes, lfp = batch.spikes.clone(), batch.lfp.clone()
    for b in range(spikes.shape[0]):
        spikes[b, :, batch.n_units[b] :] = 4
        lfp[b, :, batch.n_channels[b] :] = 9.0
    return batch._replace(spikes=spikes, lfp=lfp)


def seeded_loss(objective, model, batch, seed: int = 5):
    torch.manual_seed(seed)
    return objective.training_loss(model, batch)


def assert_every_parameter_has_a_gradient(model: nn.Module) -> None:
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing


def train_steps(objective, model, batch, steps: int, lr: float = 3e-3) -> tuple[float, float]:
    """Validation loss (fixed seed) before and after `steps` Adam steps."""

    def evaluate() -> float:
        model.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            value = float(objective.validation_loss(model, batch).loss)
        model.train()
        return value

    before = evaluate()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(1)
    for _ in range(steps):
        optimizer.zero_grad()
        objective.training_loss(model, batch).loss.backward()
        optimizer.step()
    return before, evaluate()


# Masking


def test_random_token_mask_hides_exactly_the_rounded_share_of_valid_tokens():
    valid = torch.ones(4, 30, dtype=torch.bool)
    valid[1, 20:] = False
    valid[2, 2:] = False  # 2 valid tokens
    valid[3, 1:] = False  # 1 valid token: nothing can be hidden
    mask = random_token_mask(valid, valid.shape, 0.6)
    assert mask.sum(dim=1).tolist() == [18, 12, 1, 0]
    assert not (mask & ~valid).any()
    assert ((valid & ~mask).sum(dim=1) >= 1).all()
    tiny = random_token_mask(None, (2, 5), 0.01)
    assert tiny.sum(dim=1).tolist() == [1, 1]  # at least one hidden when ratio > 0
    assert not random_token_mask(None, (2, 5), 0.0).any()
    first = random_token_mask(valid, valid.shape, 0.5, generator=torch.Generator().manual_seed(3))
    again = random_token_mask(valid, valid.shape, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="ratio"):
        random_token_mask(valid, valid.shape, 1.0)


# Teacher objective


class FixedRateModel(nn.Module):
    """Predicts the log-rate eta for every entry; remembers the mask it was given."""

    def __init__(self, teacher: SpikeTeacher, eta: float) -> None:
        super().__init__()
        self.teacher = teacher
        self.config = teacher.config
        self.eta = eta
        self.mask = None

    def patch_targets(self, spikes, n_units):
        return self.teacher.patch_targets(spikes, n_units)

    def forward(self, spikes, session, n_units, mask):
        self.mask = mask
        shape = (*mask.shape, self.teacher.config.patch_size)
        return TeacherOutput(torch.full(shape, self.eta), None, None)


def test_poisson_loss_matches_a_hand_computation():
    batch = make_batch()
    model = FixedRateModel(make_teacher(), eta=-0.7)
    objective = TeacherObjective(config=TeacherLossConfig(mask_ratio=0.5), session_map=SESSION_MAP)
    out = seeded_loss(objective, model, batch)
    total, count, patches = 0.0, 0, 3  # P = ceil(20 / 8)
    for b in range(4):
        for t in range(20):
            for unit in range(int(batch.n_units[b])):
                if model.mask[b, t * patches + unit // 8]:
                    y = float(batch.spikes[b, t, unit])
                    total += math.exp(-0.7) - y * -0.7  # Poisson NLL, log-rate link
                    count += 1
    assert count > 0
    assert out.loss.item() == pytest.approx(total / count, rel=1e-5)
    assert out.metrics["poisson_nll"] == pytest.approx(total / count, rel=1e-5)
    assert 0.45 < out.metrics["masked_fraction"] < 0.55


def test_teacher_loss_ignores_padded_units_and_trains_every_parameter():
    teacher = make_teacher()
    batch = make_batch()
    objective = TeacherObjective(config=TeacherLossConfig(), session_map=SESSION_MAP)
    teacher.eval()
    reference = seeded_loss(objective, teacher, batch).loss
    padded = seeded_loss(objective, teacher, with_padding_changed(batch)).loss
    assert padded.item() == reference.item()
    teacher.train()
    out = seeded_loss(objective, teacher, batch)
    out.loss.backward()
    assert_every_parameter_has_a_gradient(teacher)
    assert set(out.metrics) == {"poisson_nll", "bits_per_spike", "masked_fraction"}


def test_teacher_objective_validation_is_deterministic_under_a_seed():
    teacher = make_teacher().eval()
    batch = make_batch()
    objective = TeacherObjective(config=TeacherLossConfig(), session_map=SESSION_MAP)
    torch.manual_seed(4)
    first = objective.validation_loss(teacher, batch)
    torch.manual_seed(4)
    assert objective.validation_loss(teacher, batch).loss.item() == first.loss.item()


class WindowRecorder(nn.Module):
    """Wraps a teacher and keeps the spike windows its forward passes were given."""

    def __init__(self, teacher: SpikeTeacher) -> None:
        super().__init__()
        self.teacher = teacher
        self.config = teacher.config
        self.windows: list[torch.Tensor] = []

    def patch_targets(self, spikes, n_units):
        return self.teacher.patch_targets(spikes, n_units)

    def forward(self, spikes, session, n_units, mask):
        self.windows.append(spikes)
        return self.teacher(spikes, session, n_units, mask)


def test_a_teacher_with_context_steps_trains_on_random_windows_of_that_length():
    batch = make_batch(steps=20)
    model = WindowRecorder(make_teacher(context_steps=6))
    objective = TeacherObjective(config=TeacherLossConfig(), session_map=SESSION_MAP)
    torch.manual_seed(0)
    out = objective.training_loss(model, batch)
    crops = model.windows[-1]
    assert crops.shape == (4, 6, batch.spikes.shape[2])
    starts = []
    for item in range(4):  # every crop is a contiguous run of its own item's steps
        found = [t for t in range(15) if torch.equal(batch.spikes[item, t : t + 6], crops[item])]
        assert found, f"item {item}: the crop is not a window of its own spikes"
        starts.append(found)
    assert math.isfinite(out.loss.item())
    torch.manual_seed(3)
    objective.validation_loss(model, batch)
    torch.manual_seed(3)
    objective.validation_loss(model, batch)
    assert model.windows[-1].shape == (4, 6, batch.spikes.shape[2])
    assert torch.equal(model.windows[-1], model.windows[-2])  # seeded: the windows repeat


def test_context_longer_than_the_segment_keeps_the_whole_segment():
    batch = make_batch(steps=8)
    model = WindowRecorder(make_teacher(context_steps=50))
    objective = TeacherObjective(config=TeacherLossConfig(), session_map=SESSION_MAP)
    objective.training_loss(model, batch)
    assert torch.equal(model.windows[-1], batch.spikes)


def test_a_few_steps_reduce_the_teacher_loss():
    teacher = make_teacher()
    objective = TeacherObjective(config=TeacherLossConfig(), session_map=SESSION_MAP)
    before, after = train_steps(objective, teacher, make_batch(), steps=15)
    assert after < before - 0.05


# LFP objective


def test_lfp_loss_ignores_padded_channels_and_trains_every_parameter():
    encoder = make_encoder().eval()
    batch = make_batch()
    objective = LfpReconstructionObjective(config=LfpLossConfig(), session_map=SESSION_MAP)
    reference = seeded_loss(objective, encoder, batch).loss
    assert seeded_loss(objective, encoder, with_padding_changed(batch)).loss.item() == (
        reference.item()
    )
    encoder.train()
    seeded_loss(objective, encoder, batch).loss.backward()
    assert_every_parameter_has_a_gradient(encoder)


def test_lfp_loss_without_mask_scores_every_real_entry():
    encoder = make_encoder(mask_token=False).eval()
    batch = make_batch()
    objective = LfpReconstructionObjective(
        config=LfpLossConfig(mask_ratio=0.0), session_map=SESSION_MAP
    )
    out = objective.validation_loss(encoder, batch)
    reconstruction = encoder(batch.lfp, batch.session, batch.n_channels).reconstruction
    errors = []
    for b in range(4):
        predicted = reconstruction[b].reshape(20, 24)[:, : int(batch.n_channels[b])]
        errors.append((predicted - batch.lfp[b, :, : int(batch.n_channels[b])]).square().flatten())
    assert out.loss.item() == pytest.approx(torch.cat(errors).mean().item(), rel=1e-5)


def test_mask_ratio_and_mask_token_must_agree():
    batch = make_batch()
    with pytest.raises(ConfigError, match="mask_token: false"):
        LfpReconstructionObjective(
            config=LfpLossConfig(mask_ratio=0.0), session_map=SESSION_MAP
        ).training_loss(make_encoder(), batch)
    with pytest.raises(ConfigError, match="mask_token: true"):
        LfpReconstructionObjective(config=LfpLossConfig(), session_map=SESSION_MAP).training_loss(
            make_encoder(mask_token=False), batch
        )


def test_a_few_steps_reduce_the_lfp_loss():
    encoder = make_encoder()
    objective = LfpReconstructionObjective(config=LfpLossConfig(), session_map=SESSION_MAP)
    before, after = train_steps(objective, encoder, make_batch(), steps=15)
    assert after < 0.8 * before


# Distillation objective


def test_alignment_term_is_zero_for_equal_and_one_for_orthogonal_latents():
    z = torch.randn(3, 7, 16)
    alignment, cosine = alignment_term(z, z)
    assert alignment.item() == pytest.approx(0.0, abs=1e-6)
    assert cosine.item() == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(3, 7, 16)
    orthogonal = noise - (noise * z).sum(-1, keepdim=True) / z.square().sum(-1, keepdim=True) * z
    assert alignment_term(orthogonal, z)[0].item() == pytest.approx(1.0, abs=1e-5)


class LatentOverride(nn.Module):
    """A student whose latents are replaced by fixed ones (reconstruction unchanged)."""

    def __init__(self, student: LfpEncoder, latents: torch.Tensor) -> None:
        super().__init__()
        self.student = student
        self.config = student.config
        self.latents = latents

    def patch_targets(self, lfp, n_channels):
        return self.student.patch_targets(lfp, n_channels)

    def forward(self, *args):
        return self.student(*args)._replace(latents=self.latents)


def test_distillation_loss_adds_lambda_times_the_alignment():
    teacher = make_teacher()
    batch = make_batch()
    z_teacher = teacher.encode(batch.spikes, batch.session, batch.n_units)
    noise = torch.randn_like(z_teacher)
    orthogonal = (
        noise
        - (noise * z_teacher).sum(-1, keepdim=True)
        / z_teacher.square().sum(-1, keepdim=True)
        * z_teacher
    )
    objective = DistillationObjective(
        config=DistillLossConfig(alignment_weight=5.0),
        teacher=teacher,
        teacher_session_map=SESSION_MAP,
        student_session_map=torch.zeros(2, dtype=torch.long),
    )
    student = make_encoder(sessions={"c0": 20}, mask_token=False).eval()
    same = objective.validation_loss(LatentOverride(student, z_teacher), batch)
    assert same.metrics["alignment"] == pytest.approx(0.0, abs=1e-5)
    assert same.loss.item() == pytest.approx(same.metrics["reconstruction_mse"], abs=1e-4)
    apart = objective.validation_loss(LatentOverride(student, orthogonal), batch)
    assert apart.metrics["cosine"] == pytest.approx(0.0, abs=1e-5)
    assert apart.loss.item() - apart.metrics["reconstruction_mse"] == pytest.approx(5.0, abs=1e-4)


def test_distillation_never_trains_the_teacher_and_trains_every_student_parameter():
    teacher = make_teacher()
    before = {name: p.clone() for name, p in teacher.state_dict().items()}
    student = make_encoder(sessions={"c0": 20}, mask_token=False)
    objective = DistillationObjective(
        config=DistillLossConfig(),
        teacher=teacher,
        teacher_session_map=SESSION_MAP,
        student_session_map=torch.zeros(2, dtype=torch.long),
    )
    teacher.train()  # a caller's mistake: the objective still runs it in eval mode
    batch = make_batch()
    out = objective.training_loss(student, batch)
    out.loss.backward()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert_every_parameter_has_a_gradient(student)
    assert set(out.metrics) == {"reconstruction_mse", "cosine", "alignment"}
    z = objective.teacher_latents(batch)
    torch.testing.assert_close(z, teacher.encode(batch.spikes, batch.session, batch.n_units))
    assert all(torch.equal(before[name], p) for name, p in teacher.state_dict().items())


def test_distillation_with_masking_ignores_padding_and_trains_every_parameter():
    student = make_encoder().eval()  # multi-session student with a mask vector
    objective = DistillationObjective(
        config=DistillLossConfig(mask_ratio=0.3),
        teacher=make_teacher(),
        teacher_session_map=SESSION_MAP,
        student_session_map=SESSION_MAP,
    )
    batch = make_batch()
    reference = seeded_loss(objective, student, batch).loss.item()
    assert seeded_loss(objective, student, with_padding_changed(batch)).loss.item() == reference
    student.train()
    seeded_loss(objective, student, batch).loss.backward()
    assert_every_parameter_has_a_gradient(student)


def test_a_few_steps_reduce_the_distillation_loss():
    teacher = make_teacher()
    student = make_encoder(sessions={"c0": 20}, mask_token=False)
    objective = DistillationObjective(
        config=DistillLossConfig(),
        teacher=teacher,
        teacher_session_map=SESSION_MAP,
        student_session_map=torch.zeros(2, dtype=torch.long),
    )
    batch = make_batch()
    torch.manual_seed(0)
    start = objective.validation_loss(student.eval(), batch).metrics
    before, after = train_steps(objective, student, batch, steps=15)
    torch.manual_seed(0)
    end = objective.validation_loss(student.eval(), batch).metrics
    assert after < 0.8 * before
    assert end["cosine"] > start["cosine"]
    assert end["reconstruction_mse"] < start["reconstruction_mse"]


def test_centred_alignment_ignores_a_direction_shared_by_every_step():
    torch.manual_seed(0)
    shared = torch.randn(1, 1, 8) * 10.0
    z = torch.randn(2, 5, 8)
    other = torch.randn(2, 5, 8)
    raw = alignment_term(z + shared, other + shared)[1].item()
    centred = alignment_term(z + shared, other + shared, center=True)[1].item()
    assert raw > 0.9 and abs(centred) < 0.5
    assert alignment_term(z + shared, z + 2 * shared, center=True)[1].item() == pytest.approx(1.0)
