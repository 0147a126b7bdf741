import io
import math

import pytest
import torch

from neuralcli.training.schedule import (
    build_warmup_cosine,
    schedule_steps,
    steps_per_epoch,
    warmup_cosine_factor,
)


def test_warmup_is_linear_from_zero():
    factors = [warmup_cosine_factor(s, warmup_steps=10, horizon_steps=100) for s in range(11)]
    assert factors == pytest.approx([s / 10 for s in range(11)])


def test_cosine_after_warmup():
    # progress 0.5 of the cosine half-period: ½(1 + cos(π/2)) = 0.5
    assert warmup_cosine_factor(55, warmup_steps=10, horizon_steps=100) == pytest.approx(0.5)
    assert warmup_cosine_factor(100, warmup_steps=10, horizon_steps=100) == pytest.approx(0.0)
    assert warmup_cosine_factor(150, warmup_steps=10, horizon_steps=100) == 0.0


def test_no_warmup_starts_at_full_rate():
    assert warmup_cosine_factor(0, warmup_steps=0, horizon_steps=50) == 1.0


@pytest.mark.parametrize(
    ("n_train", "batch", "epochs", "warmup", "factor", "total", "warm", "final"),
    [
        (3500, 512, 200, 10, 1.3, 1400, 70, 0.13),  # Lorenz AE, LDNS §12
        (8417, 256, 2000, 100, 1.3, 66000, 3300, 0.13),  # human diffusion
        (2008, 64, 260, 10, 1.1, 8320, 320, 0.02),  # monkey AE
    ],
)
def test_ldns_step_counts_and_final_factor(
    n_train, batch, epochs, warmup, factor, total, warm, final
):
    plan = schedule_steps(
        n_train,
        batch_size=batch,
        world_size=1,
        epochs=epochs,
        warmup_epochs=warmup,
        lr_horizon_factor=factor,
    )
    assert (plan.total_steps, plan.warmup_steps) == (total, warm)
    last = warmup_cosine_factor(
        total - 1, warmup_steps=plan.warmup_steps, horizon_steps=plan.horizon_steps
    )
    assert last == pytest.approx(final, abs=0.01)


def test_monkey_ae_factor_at_epoch_140():
    plan = schedule_steps(
        2008, batch_size=64, world_size=1, epochs=260, warmup_epochs=10, lr_horizon_factor=1.1
    )
    factor = warmup_cosine_factor(
        140 * plan.steps_per_epoch, warmup_steps=plan.warmup_steps, horizon_steps=plan.horizon_steps
    )
    assert factor == pytest.approx(0.55, abs=0.01)


def test_max_steps_caps_the_run_not_the_schedule():
    full = schedule_steps(
        100, batch_size=10, world_size=1, epochs=5, warmup_epochs=1, lr_horizon_factor=1.3
    )
    capped = schedule_steps(
        100,
        batch_size=10,
        world_size=1,
        epochs=5,
        warmup_epochs=1,
        lr_horizon_factor=1.3,
        max_steps=7,
    )
    assert capped.total_steps == 7
    assert capped.horizon_steps == full.horizon_steps == pytest.approx(65.0)


def test_steps_per_epoch_keeps_partial_batch_and_splits_ranks():
    assert steps_per_epoch(10, batch_size=3) == 4
    assert steps_per_epoch(10, batch_size=3, world_size=2) == 2  # 5 items per rank
    assert steps_per_epoch(11, batch_size=3, world_size=2) == 2  # the 11th item is dropped
    with pytest.raises(ValueError):
        steps_per_epoch(1, batch_size=3, world_size=2)


def test_lambda_lr_follows_the_factor_and_survives_a_save():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=0.5)
    scheduler = build_warmup_cosine(optimizer, warmup_steps=3, horizon_steps=12.5)
    for step in range(15):
        expected = 0.5 * warmup_cosine_factor(step, warmup_steps=3, horizon_steps=12.5)
        assert math.isclose(optimizer.param_groups[0]["lr"], expected, rel_tol=1e-12, abs_tol=0)
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    assert buffer.tell() > 0
