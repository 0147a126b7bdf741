import json
import os
import signal
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from torch import nn

from neuralcli.errors import RunDirError
from neuralcli.models.layers.buffer_pool import POOL
from neuralcli.runtime.checkpoint import (
    load_state,
    load_state_dict_checked,
    load_weights,
    read_model_meta,
)
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.distributed import DistributedInfo
from neuralcli.training.config import TrainingConfig
from neuralcli.training.loop import (
    NullCallback,
    StopFlag,
    TrainingInterrupted,
    epoch_indices,
    strip_wrapper_prefixes,
    train,
)
from neuralcli.training.objective import LossOutput
from neuralcli.training.schedule import warmup_cosine_factor

RUNTIME = Runtime(device=torch.device("cpu"), precision="fp32", seed=7)


class Pair(NamedTuple):
    x: torch.Tensor  # (B, 6)
    y: torch.Tensor  # (B, 1)


class ToyData:
    def __init__(self, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=generator)
        weight = torch.linspace(-1.0, 1.0, 6)[:, None]
        self.y = torch.tanh(self.x @ weight) + 0.05 * torch.randn(n, 1, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, indices: torch.Tensor) -> Pair:
        return Pair(self.x[indices], self.y[indices])


class ToyModel(nn.Module):
    def __init__(self):
        super().__init__()
        # BatchNorm adds float and integer buffers that the checkpoints must carry.
        self.net = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ToyObjective:
    """MSE with a dropout-like random input mask, so the global RNG matters for resume."""

    def training_loss(self, model: nn.Module, batch: Pair) -> LossOutput:
        keep = (torch.rand_like(batch.x) > 0.25).float()
        loss = nn.functional.mse_loss(model(batch.x * keep / 0.75), batch.y)
        return LossOutput(loss, {"kept": keep.mean()})

    def validation_loss(self, model: nn.Module, batch: Pair) -> LossOutput:
        loss = nn.functional.mse_loss(model(batch.x), batch.y)
        return LossOutput(loss, {"mse": loss})


# 38 items in batches of 8: 5 steps per epoch, the last of 6 items (BatchNorm needs > 1).
TRAIN = ToyData(38, seed=1)
VAL = ToyData(13, seed=2)


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny ops gain nothing from a thread pool, and on a busy machine its spinning costs
    # more than the arithmetic.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_config(**overrides) -> TrainingConfig:
    settings = dict(
        epochs=4,
        batch_size=8,
        lr=1e-2,
        warmup_epochs=1,
        lr_horizon_factor=1.3,
        grad_clip=1.0,
        val_every_epochs=1,
        checkpoint_every_steps=4,
        log_every_steps=3,
    )
    settings.update(overrides)
    return TrainingConfig(**settings)


def run(run_dir: Path, config: TrainingConfig, *, init_seed: int = 0, **kwargs):
    torch.manual_seed(init_seed)
    model = ToyModel()
    return train(
        model=model,
        objective=ToyObjective(),
        train_data=TRAIN,
        val_data=VAL,
        config=config,
        runtime=RUNTIME,
        run_dir=run_dir,
        model_kind="toy",
        model_config={"hidden": 16},
        **kwargs,
    )


def test_training_frees_the_pooled_block_buffers(tmp_path, monkeypatch):
    monkeypatch.setattr(POOL, "min_bytes", 0)
    POOL.give(torch.empty(64))  # left by the fused blocks of a training step
    assert POOL.held_bytes() > 0
    run(tmp_path / "run", make_config(epochs=1))
    assert POOL.held_bytes() == 0


def read_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


class StopAt(NullCallback):
    def __init__(self, step: int, flag: StopFlag):
        self.step, self.flag = step, flag

    def on_step(self, step: int, metrics: dict) -> None:
        if step == self.step:
            self.flag.request_stop()


class Recorder(NullCallback):
    def __init__(self):
        self.events: list[tuple] = []

    def on_start(self, total_steps, start_step):
        self.events.append(("start", total_steps, start_step))

    def on_step(self, step, metrics):
        self.events.append(("step", step, bool(metrics)))

    def on_validation(self, step, metrics):
        self.events.append(("val", step))

    def on_end(self, result):
        self.events.append(("end", result.steps))


def test_trains_logs_and_checkpoints(tmp_path):
    recorder = Recorder()
    config = make_config(epochs=8, lr=3e-2)
    result = run(tmp_path, config, extra_meta={"data_hash": "abc"}, callback=recorder)

    assert result.steps == 40 and result.epochs == 8 and not result.interrupted
    records = read_records(tmp_path)
    train_records = [r for r in records if "loss" in r]
    val_records = [r for r in records if "val_loss" in r]
    assert train_records[-1]["loss"] < 0.7 * train_records[0]["loss"]
    assert [r["step"] for r in train_records] == [*range(3, 40, 3), 40]
    assert {"epoch", "lr", "samples_per_s", "grad_norm", "kept"} <= set(train_records[0])
    assert [r["step"] for r in val_records] == list(range(5, 41, 5))
    assert val_records[-1]["val_loss"] < val_records[0]["val_loss"]
    assert result.val_loss == val_records[-1]["val_loss"]
    assert result.best_val_loss == min(r["val_loss"] for r in val_records)

    # The lr logged at a step is the one that step used (LDNS §12 schedule).
    third = train_records[0]
    expected = 3e-2 * warmup_cosine_factor(2, warmup_steps=5, horizon_steps=40 * 1.3)
    assert third["lr"] == pytest.approx(expected)

    meta = read_model_meta(tmp_path, expected_kind="toy")
    assert meta["step"] == 40 and meta["epoch"] == 8
    assert meta["config"] == {"hidden": 16} and meta["data_hash"] == "abc"
    assert meta["metrics"]["val_loss"] == result.val_loss
    fresh = ToyModel()
    load_state_dict_checked(fresh, load_weights(tmp_path), tmp_path)
    assert load_state(tmp_path)["position"]["step"] == 40

    assert recorder.events[0] == ("start", 40, 0)
    assert recorder.events[-1] == ("end", 40)
    assert ("step", 3, True) in recorder.events and ("step", 4, False) in recorder.events
    assert sum(e[0] == "val" for e in recorder.events) == 8


def test_validation_and_saved_weights_use_the_ema(tmp_path):
    result = run(tmp_path, make_config(ema=True, epochs=2))
    state = load_state(tmp_path)
    saved = load_weights(tmp_path)
    for name, value in saved.items():
        assert torch.equal(value, state["ema"]["shadow"][name])
    assert not torch.equal(saved["net.0.weight"], state["model"]["net.0.weight"])

    model = ToyModel()
    load_state_dict_checked(model, saved, tmp_path)
    model.eval()
    with torch.no_grad():
        val_loss = nn.functional.mse_loss(model(VAL.x), VAL.y, reduction="sum") / VAL.y.numel()
    assert result.val_loss == pytest.approx(val_loss.item(), rel=1e-5)


def assert_same_run(full_dir: Path, resumed_dir: Path) -> None:
    full, resumed = load_state(full_dir), load_state(resumed_dir)
    assert full["position"] == resumed["position"]
    for name, value in full["model"].items():
        assert torch.equal(value, resumed["model"][name]), name
    for name, value in load_weights(full_dir).items():
        assert torch.equal(value, load_weights(resumed_dir)[name]), name
    if full["ema"] is not None:
        for name, value in full["ema"]["shadow"].items():
            assert torch.equal(value, resumed["ema"]["shadow"][name]), name
    for index, entry in full["optimizer"]["state"].items():
        for key, value in entry.items():
            assert torch.equal(value, resumed["optimizer"]["state"][index][key]), key
    full_val = [r for r in read_records(full_dir) if "val_loss" in r]
    resumed_val = [r for r in read_records(resumed_dir) if "val_loss" in r]
    assert full_val == resumed_val


@pytest.mark.parametrize("ema", [False, True])
@pytest.mark.parametrize("stop_step", [5, 7])  # an epoch boundary and mid-epoch
def test_resume_is_bit_exact(tmp_path, ema, stop_step):
    config = make_config(ema=ema, epochs=3)
    run(tmp_path / "full", config)

    flag = StopFlag()
    with pytest.raises(TrainingInterrupted, match=f"step {stop_step};.*--resume") as info:
        run(tmp_path / "cut", config, stop_flag=flag, callback=StopAt(stop_step, flag))
    assert info.value.result.steps == stop_step and info.value.result.interrupted
    assert load_state(tmp_path / "cut")["position"]["step"] == stop_step

    # Different initial weights and RNG: everything must come from state.pt.
    result = run(tmp_path / "cut", config, init_seed=123, resume=True)
    assert result.steps == 15
    assert_same_run(tmp_path / "full", tmp_path / "cut")
    steps = [r["step"] for r in read_records(tmp_path / "cut") if "loss" in r]
    assert steps == sorted(set(steps))


def test_resume_after_a_crash_redoes_steps_since_the_last_checkpoint(tmp_path):
    class Crash(NullCallback):
        def on_step(self, step, metrics):
            if step == 7:
                raise RuntimeError("power cut")

    config = make_config(epochs=3)
    run(tmp_path / "full", config)
    with pytest.raises(RuntimeError, match="power cut"):
        run(tmp_path / "cut", config, callback=Crash())
    assert load_state(tmp_path / "cut")["position"]["step"] == 4  # checkpoint_every_steps
    assert max(r["step"] for r in read_records(tmp_path / "cut")) == 6

    run(tmp_path / "cut", config, resume=True)
    steps = [r["step"] for r in read_records(tmp_path / "cut") if "loss" in r]
    assert steps == [3, 6, 9, 12, 15]  # the step-6 record was dropped and redone
    assert_same_run(tmp_path / "full", tmp_path / "cut")


def test_sigterm_checkpoints_and_raises(tmp_path):
    class Terminate(NullCallback):
        def on_step(self, step, metrics):
            if step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 3") as info:
        run(tmp_path, make_config(), callback=Terminate())
    assert signal.getsignal(signal.SIGTERM) is before
    assert info.value.exit_code == 2
    position = load_state(tmp_path)["position"]
    assert (position["step"], position["epoch"], position["batch_in_epoch"]) == (3, 0, 3)
    assert read_model_meta(tmp_path)["step"] == 3


def test_existing_run_needs_resume(tmp_path):
    run(tmp_path, make_config(max_steps=2))
    with pytest.raises(RunDirError, match="--resume"):
        run(tmp_path, make_config(max_steps=2))
    with pytest.raises(RunDirError, match="steps per epoch"):
        run(tmp_path, make_config(max_steps=2, batch_size=4), resume=True)
    with pytest.raises(RunDirError, match="training.ema=False"):
        run(tmp_path, make_config(max_steps=2, ema=True), resume=True)


def test_resume_without_state_is_an_error(tmp_path):
    with pytest.raises(RunDirError, match="nothing to resume"):
        run(tmp_path, make_config(), resume=True)


def test_max_steps_and_param_groups(tmp_path):
    torch.manual_seed(0)
    model = ToyModel()
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    result = train(
        model=model,
        objective=ToyObjective(),
        train_data=TRAIN,
        val_data=None,
        config=make_config(max_steps=7),
        runtime=RUNTIME,
        run_dir=tmp_path,
        model_kind="toy",
        model_config={},
        param_groups=[{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
    )
    assert result.steps == 7 and result.val_loss is None
    groups = load_state(tmp_path)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    # The cap shortens the run, not the schedule: the horizon is still 4 epochs · 1.3.
    assert load_state(tmp_path)["scheduler"]["last_epoch"] == 7


def test_epoch_order_is_a_pure_function_of_the_epoch():
    single = DistributedInfo()
    first = epoch_indices(11, 3, seed=5, dist=single)
    assert torch.equal(first, epoch_indices(11, 3, seed=5, dist=single))
    assert not torch.equal(first, epoch_indices(11, 4, seed=5, dist=single))
    assert sorted(first.tolist()) == list(range(11))
    shards = [epoch_indices(11, 3, seed=5, dist=DistributedInfo(r, 2, r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_strip_wrapper_prefixes():
    weights = {"module._orig_mod.net.0.weight": torch.zeros(1), "_orig_mod.b": torch.ones(1)}
    assert list(strip_wrapper_prefixes(weights)) == ["net.0.weight", "b"]
