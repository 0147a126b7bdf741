"""The one training loop every model uses; a model contributes only its objective.

The loop owns the optimiser (AdamW, LDNS §12), the warm-up + cosine schedule, mixed
precision, gradient clipping, the EMA (LDNS §8), validation, checkpoints, resume, DDP and
Ctrl-C handling. Progress goes to a `TrainingCallback`; the loop prints nothing.

Conventions a caller can rely on:

- Data order is a pure function of (runtime.seed, epoch): every epoch draws its own
  permutation from a generator seeded by both. Under DDP rank r takes items r, r + W, ...
  of that permutation, after dropping the tail that does not divide by W, so every rank
  runs the same number of steps. The last partial batch of an epoch is kept.
- `step` is the number of optimizer steps taken; records carry the 1-based `epoch`.
  A train record holds the mean loss since the previous record (the only host sync of
  the step loop) and the objective's metrics of the logging step itself.
- Validation runs at the end of every `val_every_epochs`-th epoch and at the end of the
  run, on the EMA weights when the EMA is on, with torch's RNG forked and seeded from
  runtime.seed, so it never perturbs training and its masks/noise repeat every time.
- A checkpoint (state.pt, model.safetensors, model.json) is written every
  `checkpoint_every_steps` steps, at the end, and on a stop request. Under DDP only rank 0
  writes files and calls the callback.
- A stop request (SIGINT/SIGTERM in the main thread, or `StopFlag.request_stop()`) lets the
  current step finish, writes a checkpoint and raises `TrainingInterrupted`. Under DDP the
  ranks agree on it at logging, checkpoint and epoch-end steps, so it may take up to
  `log_every_steps` steps to act. A second Ctrl-C aborts at once.
- Resuming from state.pt continues exactly where the checkpoint left off: on CPU the
  resumed run ends with the same weights, bit for bit, as an uninterrupted one.
- Objectives must call the model as `model(...)`: under DDP and torch.compile the module
  they receive is a wrapper, whose other methods do not synchronise gradients.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from neuralcli.errors import NeuralCliError, RunDirError
from neuralcli.models.layers.buffer_pool import release_buffers
from neuralcli.runtime.allocator import trim_heap
from neuralcli.runtime.checkpoint import (
    METRICS_FILE,
    STATE_FILE,
    append_metrics,
    load_state,
    load_state_dict_checked,
    save_model,
    save_state,
)
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.distributed import DistributedInfo, barrier
from neuralcli.runtime.files import atomic_write_text
from neuralcli.training.config import TrainingConfig
from neuralcli.training.ema import EMA
from neuralcli.training.objective import BatchSource, Objective
from neuralcli.training.optimizer import AdamW
from neuralcli.training.schedule import ScheduleSteps, build_warmup_cosine, schedule_steps

STATE_FORMAT = 1
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class TrainingInterrupted(NeuralCliError):
    """Training stopped on request after saving a checkpoint; `result` holds the progress."""

    def __init__(self, message: str, *, result: TrainResult | None = None) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class TrainResult:
    steps: int  # optimizer steps taken in total (including before a resume)
    epochs: int  # 1-based epoch of the last step
    train_loss: float | None  # mean over the last logging window
    val_loss: float | None  # latest validation
    best_val_loss: float | None
    best_val_step: int | None
    seconds: float  # wall time of this call
    samples_per_s: float  # over all processes, this call
    run_dir: Path
    interrupted: bool = False


class TrainingCallback(Protocol):
    """Progress hooks, called on rank 0 only."""

    def on_start(self, total_steps: int, start_step: int) -> None: ...

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """After every step; `metrics` is the metrics.jsonl record on logging steps, else {}."""

    def on_validation(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...


class NullCallback:
    """A TrainingCallback that does nothing; subclass it to override only some hooks."""

    def on_start(self, total_steps: int, start_step: int) -> None:
        pass

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_validation(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def on_end(self, result: TrainResult) -> None:
        pass


class StopFlag:
    """Asks a running `train` to checkpoint and stop after its current step.

    The loop's SIGINT/SIGTERM handlers set it; a caller (a test, a notebook, another
    thread) may call `request_stop()` too.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request_stop(self, reason: str = "requested") -> None:
        if self.reason is None:
            self.reason = reason


@dataclass
class _Position:
    """Where training stands; everything here goes into state.pt."""

    step: int = 0
    epoch: int = 0  # 0-based epoch in progress
    batch_in_epoch: int = 0  # batches of that epoch already consumed
    train_loss: float | None = None
    val_loss: float | None = None
    best_val_loss: float | None = None
    best_val_step: int | None = None


def train(
    *,
    model: nn.Module,
    objective: Objective,
    train_data: BatchSource,
    val_data: BatchSource | None,
    config: TrainingConfig,
    runtime: Runtime,
    run_dir: Path,
    model_kind: str,
    model_config: Any,
    resume: bool = False,
    param_groups: list[dict] | None = None,
    extra_meta: dict | None = None,
    callback: TrainingCallback | None = None,
    stop_flag: StopFlag | None = None,
) -> TrainResult:
    """Train `model` on `objective` and write run_dir/{state.pt, model.*, metrics.jsonl}.

    `param_groups`: AdamW groups over the model's parameters (each may set its own
    weight_decay or lr); default one group with every trainable parameter and
    config.weight_decay. `extra_meta` adds fields to model.json. Raises RunDirError when
    run_dir already holds a run and `resume` is False (or holds none and it is True), and
    TrainingInterrupted after a stop request (see the module docstring).
    """
    run_dir = Path(run_dir)
    dist = runtime.dist
    device = runtime.device
    callback = callback if (callback is not None and dist.is_main) else NullCallback()
    stop_flag = stop_flag if stop_flag is not None else StopFlag()
    plan = schedule_steps(
        len(train_data),
        batch_size=config.batch_size,
        world_size=dist.world_size,
        epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,
        lr_horizon_factor=config.lr_horizon_factor,
        max_steps=config.max_steps,
    )
    state_path = run_dir / STATE_FILE
    if not resume and state_path.is_file():
        raise RunDirError(
            f"{run_dir} already holds a run ({STATE_FILE}); pass --resume to continue it "
            "or choose another --name"
        )
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    raw = model.to(device)
    optimizer = _build_optimizer(raw, param_groups, config, device)
    scheduler = build_warmup_cosine(
        optimizer, warmup_steps=plan.warmup_steps, horizon_steps=plan.horizon_steps
    )
    scaler = torch.amp.GradScaler(device.type) if runtime.uses_grad_scaler else None
    position = _Position()
    state = None
    if resume:
        state = load_state(run_dir)
        _check_resumable(state, run_dir, model_kind, plan, config)
        load_state_dict_checked(raw, state["model"], state_path)
        try:
            optimizer.load_state_dict(state["optimizer"])
        except ValueError as err:
            raise RunDirError(
                f"{state_path}: optimizer state does not match the parameter groups ({err}); "
                "resume with the original settings"
            ) from None
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        position = _Position(**state["position"])
        if dist.is_main:
            _truncate_metrics(run_dir, position.step)

    train_module: nn.Module = raw
    if dist.enabled:
        # DDP broadcasts rank 0's weights here, so the EMA is built after it.
        device_ids = [device.index] if device.type == "cuda" else None
        train_module = nn.parallel.DistributedDataParallel(raw, device_ids=device_ids)
    if runtime.compile:
        train_module = torch.compile(train_module)
    ema = None
    eval_module = raw
    if config.ema:
        ema = EMA(raw, min_decay=config.ema_min_decay, max_decay=config.ema_max_decay)
        if state is not None:
            ema.load_state_dict(state["ema"])
        eval_module = copy.deepcopy(raw).requires_grad_(False)
    if state is not None:
        # Last, so nothing above (module copies, wrappers) draws from the restored streams.
        _restore_rng(state["rng"], dist, device)

    loop = _Loop(
        raw=raw,
        train_module=train_module,
        eval_module=eval_module,
        objective=objective,
        train_data=train_data,
        val_data=val_data if val_data is not None and len(val_data) > 0 else None,
        config=config,
        runtime=runtime,
        run_dir=run_dir,
        model_kind=model_kind,
        model_config=model_config,
        extra_meta=dict(extra_meta or {}),
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
        plan=plan,
        position=position,
        callback=callback,
        stop_flag=stop_flag,
    )
    with _stop_on_signals(stop_flag):
        try:
            return loop.run()
        finally:
            # The fused LDNS blocks' pooled scratch and the free heap a tuned allocator keeps
            # serve the training steps only: free them before whatever the process does next.
            release_buffers()
            trim_heap()


@dataclass
class _Loop:
    """Everything one `train` call works with; `run` is the step loop."""

    raw: nn.Module  # the unwrapped model: checkpoints, EMA, clipping
    train_module: nn.Module  # raw, or its DDP / torch.compile wrapper: forward passes
    eval_module: nn.Module  # raw, or the module the EMA weights are copied into
    objective: Objective
    train_data: BatchSource
    val_data: BatchSource | None
    config: TrainingConfig
    runtime: Runtime
    run_dir: Path
    model_kind: str
    model_config: Any
    extra_meta: dict
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    ema: EMA | None
    plan: ScheduleSteps
    position: _Position
    callback: TrainingCallback
    stop_flag: StopFlag

    def __post_init__(self) -> None:
        self.dist = self.runtime.dist
        self.device = self.runtime.device
        self.log_every = max(1, self.config.log_every_steps)
        self.clip_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        # 0-based epoch of the latest step, for records and the result.
        self.last_epoch = max(0, self.position.epoch - (self.position.batch_in_epoch == 0))

    def run(self) -> TrainResult:
        config, plan, pos = self.config, self.plan, self.position
        self.callback.on_start(plan.total_steps, pos.step)
        started = time.perf_counter()
        session_samples = 0
        loss_sum = torch.zeros((), device=self.device)  # summed over the logging window
        window = _Window(time.perf_counter())
        grad_norm: torch.Tensor | None = None
        metrics: dict[str, Any] = {}
        self.raw.train()

        epoch, first_batch = pos.epoch, pos.batch_in_epoch
        while pos.step < plan.total_steps:
            shard = epoch_indices(
                len(self.train_data), epoch, seed=self.runtime.seed, dist=self.dist
            )
            for batch_index in range(first_batch, plan.steps_per_epoch):
                self.last_epoch = epoch
                indices = shard[
                    batch_index * config.batch_size : (batch_index + 1) * config.batch_size
                ]
                batch = to_device(self.train_data.batch(indices), self.device)
                with self.runtime.autocast():
                    out = self.objective.training_loss(self.train_module, batch)
                if self.scaler is not None:
                    self.scaler.scale(out.loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    out.loss.backward()
                if config.grad_clip > 0:
                    grad_norm = nn.utils.clip_grad_norm_(self.clip_params, config.grad_clip)
                lr = self.optimizer.param_groups[0]["lr"]
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                pos.step += 1
                if self.ema is not None:
                    self.ema.update(self.raw, pos.step - 1)  # LDNS §8: 0-based step count
                loss_sum.add_(out.loss.detach())
                metrics = out.metrics
                window.steps += 1
                window.samples += len(indices) * self.dist.world_size
                session_samples += len(indices) * self.dist.world_size

                finished = pos.step >= plan.total_steps
                epoch_done = finished or batch_index + 1 == plan.steps_per_epoch
                log_due = finished or pos.step % self.log_every == 0
                checkpoint_due = finished or pos.step % config.checkpoint_every_steps == 0

                record: dict[str, Any] = {}
                if log_due:
                    record = self._log(epoch, loss_sum, window, lr, grad_norm, metrics)
                self.callback.on_step(pos.step, record)
                stop = self._stop_agreed(sync=log_due or epoch_done or checkpoint_due)
                if stop and not record:
                    record = self._log(epoch, loss_sum, window, lr, grad_norm, metrics)
                if epoch_done and self.val_data is not None and (finished or self._val_due(epoch)):
                    self._validate(epoch)
                if checkpoint_due or stop:
                    if batch_index + 1 == plan.steps_per_epoch:
                        pos.epoch, pos.batch_in_epoch = epoch + 1, 0
                    else:
                        pos.epoch, pos.batch_in_epoch = epoch, batch_index + 1
                    self._save_checkpoint(epoch)
                if stop:
                    result = self._result(started, session_samples, interrupted=True)
                    self.callback.on_end(result)
                    barrier(self.dist)
                    raise TrainingInterrupted(
                        f"training interrupted at step {pos.step}; checkpoint saved to "
                        f"{self.run_dir}; continue with --resume",
                        result=result,
                    )
                if finished:
                    break
            epoch, first_batch = epoch + 1, 0

        result = self._result(started, session_samples, interrupted=False)
        self.callback.on_end(result)
        barrier(self.dist)
        return result

    def _val_due(self, epoch: int) -> bool:
        every = self.config.val_every_epochs
        return every > 0 and (epoch + 1) % every == 0

    def _stop_agreed(self, *, sync: bool) -> bool:
        """Whether to stop now; under DDP every rank must agree, so only at sync steps."""
        if not self.dist.enabled:
            return self.stop_flag.requested
        if not sync:
            return False
        flag = torch.tensor(float(self.stop_flag.requested), device=self.device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        return bool(flag.item())

    def _log(
        self,
        epoch: int,
        loss_sum: torch.Tensor,
        window: _Window,
        lr: float,
        grad_norm: torch.Tensor | None,
        metrics: dict[str, Any],
    ) -> dict[str, Any]:
        """Write a train record (mean loss of the window) and reset the window."""
        if self.dist.enabled:
            torch_dist.all_reduce(loss_sum)
            loss_sum.div_(self.dist.world_size)
        loss = loss_sum.item() / window.steps
        elapsed = time.perf_counter() - window.start
        record: dict[str, Any] = {
            "step": self.position.step,
            "epoch": epoch + 1,
            "loss": loss,
            "lr": lr,
            "samples_per_s": window.samples / elapsed if elapsed > 0 else 0.0,
        }
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        if self.ema is not None:
            record["ema_decay"] = self.ema.decay
        for name, value in metrics.items():
            record[name] = float(value)
        self.position.train_loss = loss
        if self.dist.is_main:
            append_metrics(self.run_dir, record)
        loss_sum.zero_()
        window.reset(time.perf_counter())
        return record

    def _validate(self, epoch: int) -> None:
        """Mean validation loss and metrics (weighted by batch size) on the eval weights.

        Under DDP every rank evaluates the whole (small) validation set with the same
        weights, so all ranks hold the same numbers without communication.
        """
        module = self.eval_module
        if self.ema is not None:
            self.ema.copy_to(module)
        was_training = module.training
        module.eval()
        n_val = len(self.val_data)
        sums: dict[str, float] = {}
        fork_devices = [] if self.device.type == "cpu" else [self.device.index or 0]
        with (
            torch.no_grad(),
            torch.random.fork_rng(devices=fork_devices, device_type=self.device.type),
        ):
            torch.manual_seed(self.runtime.seed)
            for start in range(0, n_val, self.config.batch_size):
                indices = torch.arange(start, min(n_val, start + self.config.batch_size))
                batch = to_device(self.val_data.batch(indices), self.device)
                with self.runtime.autocast():
                    out = self.objective.validation_loss(module, batch)
                weight = len(indices)
                for name, value in (("loss", out.loss), *out.metrics.items()):
                    key = f"val_{name}"
                    sums[key] = sums.get(key, 0.0) + float(value) * weight
        module.train(was_training)
        pos = self.position
        record: dict[str, Any] = {"step": pos.step, "epoch": epoch + 1}
        record.update({key: total / n_val for key, total in sums.items()})
        pos.val_loss = record["val_loss"]
        if pos.best_val_loss is None or pos.val_loss < pos.best_val_loss:
            pos.best_val_loss, pos.best_val_step = pos.val_loss, pos.step
        if self.dist.is_main:
            append_metrics(self.run_dir, record)
        self.callback.on_validation(pos.step, record)

    def _save_checkpoint(self, epoch: int) -> None:
        """state.pt (everything to resume) and model.safetensors/model.json (rank 0 only)."""
        rng = _rng_state(self.device)
        if self.dist.enabled:
            every_rank: list[Any] = [None] * self.dist.world_size
            torch_dist.all_gather_object(every_rank, rng)
        else:
            every_rank = [rng]
        if not self.dist.is_main:
            return
        pos = self.position
        save_state(
            self.run_dir,
            {
                "format": STATE_FORMAT,
                "model_kind": self.model_kind,
                "steps_per_epoch": self.plan.steps_per_epoch,
                "world_size": self.dist.world_size,
                "position": vars(pos).copy(),
                "model": self.raw.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": every_rank,
            },
        )
        weights = (
            self.ema.state_dict_for_saving() if self.ema is not None else self.raw.state_dict()
        )
        save_model(
            self.run_dir,
            strip_wrapper_prefixes(weights),
            kind=self.model_kind,
            config=self.model_config,
            extra={
                "step": pos.step,
                "epoch": epoch + 1,
                "metrics": {
                    "train_loss": pos.train_loss,
                    "val_loss": pos.val_loss,
                    "best_val_loss": pos.best_val_loss,
                    "best_val_step": pos.best_val_step,
                },
                **self.extra_meta,
            },
        )

    def _result(self, started: float, session_samples: int, *, interrupted: bool) -> TrainResult:
        seconds = time.perf_counter() - started
        pos = self.position
        return TrainResult(
            steps=pos.step,
            epochs=self.last_epoch + 1,
            train_loss=pos.train_loss,
            val_loss=pos.val_loss,
            best_val_loss=pos.best_val_loss,
            best_val_step=pos.best_val_step,
            seconds=seconds,
            samples_per_s=session_samples / seconds if seconds > 0 else 0.0,
            run_dir=self.run_dir,
            interrupted=interrupted,
        )


@dataclass
class _Window:
    """Steps, samples and start time of the current logging window."""

    start: float
    steps: int = 0
    samples: int = 0

    def reset(self, now: float) -> None:
        self.start, self.steps, self.samples = now, 0, 0


def epoch_indices(n_items: int, epoch: int, *, seed: int, dist: DistributedInfo) -> torch.Tensor:
    """This rank's item order for `epoch`: a strided shard of a (seed, epoch) permutation.

    Returns int64 (n_items // world_size,) on CPU; the tail that does not divide by the
    world size is dropped so that every rank runs the same number of steps.
    """
    entropy = np.random.SeedSequence([seed % 2**64, epoch]).generate_state(2, dtype=np.uint64)
    generator = torch.Generator().manual_seed(int(entropy[0]) % 2**63)
    order = torch.randperm(n_items, generator=generator)
    per_rank = n_items // dist.world_size
    return order[dist.rank : per_rank * dist.world_size : dist.world_size]


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or a (named) tuple / list / dict of tensors, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(item, device) for item in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def strip_wrapper_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP `module.` and torch.compile `_orig_mod.` prefixes from parameter names."""
    cleaned = {}
    for name, tensor in state_dict.items():
        stripped = True
        while stripped:
            stripped = False
            for prefix in _WRAPPER_PREFIXES:
                if name.startswith(prefix):
                    name, stripped = name[len(prefix) :], True
        cleaned[name] = tensor
    return cleaned


def _build_optimizer(
    raw: nn.Module, param_groups: list[dict] | None, config: TrainingConfig, device: torch.device
) -> AdamW:
    """AdamW with weight decay everywhere unless a group says otherwise (LDNS §12)."""
    if param_groups is None:
        groups = [{"params": [p for p in raw.parameters() if p.requires_grad]}]
    else:
        groups = [dict(group) for group in param_groups]  # AdamW fills in defaults in place
    return AdamW(
        groups,
        lr=config.lr,
        betas=tuple(config.adam_betas),
        weight_decay=config.weight_decay,
        fused=device.type == "cuda" or None,
    )


def _check_resumable(
    state: dict[str, Any],
    run_dir: Path,
    model_kind: str,
    plan: ScheduleSteps,
    config: TrainingConfig,
) -> None:
    if state.get("format") != STATE_FORMAT:
        raise RunDirError(
            f"{run_dir / STATE_FILE} was written by another neuralcli version; start a new run"
        )
    if state["model_kind"] != model_kind:
        raise RunDirError(
            f"{run_dir} holds a {state['model_kind']!r} run, not {model_kind!r}; "
            "resume it with the matching command or choose another --name"
        )
    if (state["ema"] is not None) != config.ema:
        raise RunDirError(
            f"{run_dir} was trained with training.ema={state['ema'] is not None}; "
            "resume with the same setting"
        )
    if state["steps_per_epoch"] != plan.steps_per_epoch:
        raise RunDirError(
            f"{run_dir} was trained with {state['steps_per_epoch']} steps per epoch, now "
            f"{plan.steps_per_epoch} (batch size, number of processes or data changed); "
            "resume with the original settings"
        )


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop records written after the checkpoint being resumed (they will be redone)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record_step = json.loads(line).get("step", 0)
        except (json.JSONDecodeError, AttributeError):
            continue  # a line cut short by a crash
        if record_step <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(states: list[dict[str, Any]], dist: DistributedInfo, device: torch.device) -> None:
    state = states[dist.rank % len(states)]
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


@contextlib.contextmanager
def _stop_on_signals(flag: StopFlag) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a stop request while training (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and flag.requested:
            raise KeyboardInterrupt  # a second Ctrl-C: stop without waiting for the checkpoint
        flag.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
