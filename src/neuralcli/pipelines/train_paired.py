"""`neuralcli train teacher|student` and `neuralcli distill` (distillation §6–§8).

All three read paired sessions (pipelines/paired_data.py), build a transformer with one
space-embedding table per session, and hand it with its objective to the one training loop.
model.json records the session vocabulary ("sessions": name -> channel or unit count, in
vocabulary order) so `from_pretrained` rebuilds the tokenizer, plus the data the run read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from neuralcli.config.build import dump_yaml
from neuralcli.config.distill_schemas import (
    DistillRunConfig,
    FinetuneConfig,
    StudentRunConfig,
    TeacherRunConfig,
)
from neuralcli.data.paired import PairedDataset, paired_source
from neuralcli.data.store import SessionReader
from neuralcli.errors import ConfigError, DataError
from neuralcli.models.lfp_encoder import LfpEncoder
from neuralcli.models.spike_teacher import SpikeTeacher
from neuralcli.pipelines.paired_data import open_paired, session_counts, session_files, session_map
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter, TrainingProgress
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.train_ae import TrainRunResult, prepare_run_dir
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.seed import seed_everything
from neuralcli.training.distill_objective import DistillationObjective
from neuralcli.training.lfp_objective import LfpReconstructionObjective
from neuralcli.training.loop import train
from neuralcli.training.teacher_objective import TeacherObjective


def train_teacher(
    config: TeacherRunConfig,
    *,
    home: Path,
    runtime: Runtime,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> TrainRunResult:
    """Masked modelling of spike tokens over the configured sessions (MS-Spike, §6)."""
    reporter = reporter or SilentReporter()
    train_set, val_set = _splits(home, config.data, reporter)
    counts = session_counts(train_set, "spikes")
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        raise DataError(f"sessions {empty} have no units; leave them out of data.sessions")
    seed_everything(runtime.seed, deterministic=runtime.deterministic)
    model = _build_or_extend(SpikeTeacher, config.model, config.finetune, counts, home)
    objective = TeacherObjective(
        config=config.loss, session_map=session_map(train_set.sessions, model.sessions)
    )
    return _fit(config, model, objective, train_set, val_set, home, runtime, resume, reporter)


def train_student(
    config: StudentRunConfig,
    *,
    home: Path,
    runtime: Runtime,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> TrainRunResult:
    """Masked LFP reconstruction over the configured sessions (MS-LFP, §7), or fine-tuning
    a trained LFP model on new sessions (`finetune.from_run`)."""
    reporter = reporter or SilentReporter()
    train_set, val_set = _splits(home, config.data, reporter)
    counts = session_counts(train_set, "lfp")
    seed_everything(runtime.seed, deterministic=runtime.deterministic)
    model = _build_or_extend(LfpEncoder, config.model, config.finetune, counts, home)
    objective = LfpReconstructionObjective(
        config=config.loss, session_map=session_map(train_set.sessions, model.sessions)
    )
    return _fit(config, model, objective, train_set, val_set, home, runtime, resume, reporter)


def distill(
    config: DistillRunConfig,
    *,
    home: Path,
    runtime: Runtime,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> TrainRunResult:
    """Train one session's LFP student against the frozen teacher's latents (§8)."""
    reporter = reporter or SilentReporter()
    if not config.session:
        raise ConfigError("no session to distill: pass --session <name> (e.g. --session s04)")
    if not config.teacher:
        raise ConfigError("no teacher given: pass --teacher runs/<teacher-run>")
    session = config.session
    teacher_dir = resolve_run_dir(config.teacher, home)
    teacher = SpikeTeacher.from_pretrained(teacher_dir, device=runtime.device)
    teacher.requires_grad_(False).eval()
    if session not in teacher.sessions:
        raise DataError(
            f"teacher {teacher_dir.name} has no session {session!r} in its vocabulary "
            f"({', '.join(teacher.sessions)}); fine-tune it on that session first: neuralcli "
            f"train teacher --preset <preset> --set finetune.from_run={teacher_dir.name} "
            f"--sessions {session}"
        )
    if config.model.d_model != teacher.config.d_model:
        raise ConfigError(
            f"model.d_model is {config.model.d_model} but teacher {teacher_dir.name} has "
            f"{teacher.config.d_model}: the latents are compared directly; set "
            f"--set model.d_model={teacher.config.d_model}"
        )
    files = session_files(home, config.data.dataset, [session], reporter=reporter)
    path = files[session]
    n_units = _check_has_spikes(path, session)
    expected_units = teacher.channel_counts[teacher.sessions.index(session)]
    if n_units != expected_units:
        raise DataError(
            f"session {session} has {n_units} units but teacher {teacher_dir.name} was trained "
            f"on {expected_units} for it (another processed variant?); distill from the data "
            "the teacher saw or fine-tune the teacher on this one"
        )
    train_set, val_set = open_paired(files, "train"), open_paired(files, "val")
    n_channels = session_counts(train_set, "lfp")[session]
    seed_everything(runtime.seed, deterministic=runtime.deterministic)
    student = _initial_student(config, session, n_channels, home)
    objective = DistillationObjective(
        config=config.loss,
        teacher=teacher,
        teacher_session_map=session_map([session], teacher.sessions),
        student_session_map=session_map([session], student.sessions),
    )
    run_config = config if config.name else _named(config, f"distilled-{session}")
    extra = {"teacher": str(teacher_dir), "init": config.init}
    return _fit(
        run_config, student, objective, train_set, val_set, home, runtime, resume, reporter, extra
    )


def _splits(
    home: Path, data: Any, reporter: ProgressReporter
) -> tuple[PairedDataset, PairedDataset]:
    files = session_files(home, data.dataset, data.sessions, reporter=reporter)
    return open_paired(files, "train"), open_paired(files, "val")


def _build_or_extend(
    model_cls: type,
    model_config: Any,
    finetune: FinetuneConfig,
    counts: Mapping[str, int],
    home: Path,
) -> nn.Module:
    """A fresh model over `counts`' sessions, or the `finetune.from_run` model with the
    sessions it lacks added (scope "new-sessions" then trains only their embeddings)."""
    if finetune.from_run is None:
        return model_cls(config=model_config, sessions=dict(counts))
    base_dir = resolve_run_dir(finetune.from_run, home)
    model = model_cls.from_pretrained(base_dir).train()
    known = dict(zip(model.sessions, model.channel_counts, strict=True))
    added = []
    for name, count in counts.items():
        if name not in known:
            model.add_session(name, count)
            added.append(name)
        elif known[name] != count:
            raise DataError(
                f"session {name} has {count} channels/units but {base_dir.name} was trained on "
                f"{known[name]}; fine-tune from a run made on the same processed data"
            )
    if finetune.scope == "new-sessions":
        if not added:
            raise ConfigError(
                "finetune.scope=new-sessions but every session is already in "
                f"{base_dir.name}'s vocabulary; use finetune.scope=all"
            )
        model.freeze_except_sessions(added)
    return model


def _initial_student(
    config: DistillRunConfig, session: str, n_channels: int, home: Path
) -> LfpEncoder:
    # The mask vector exists only when the loss masks tokens: DDP needs every parameter used.
    mask_token = config.loss.mask_ratio > 0
    if config.init is None:
        model_config = dataclasses.replace(config.model, mask_token=mask_token)
        return LfpEncoder(config=model_config, sessions={session: n_channels})
    init_dir = resolve_run_dir(config.init, home)
    base = LfpEncoder.from_pretrained(init_dir)
    if session not in base.sessions:
        raise DataError(
            f"--init {init_dir.name} has no session {session!r} ({', '.join(base.sessions)}); "
            "fine-tune it on that session first or distill without --init"
        )
    student = base.single_session(session, mask_token=mask_token)
    if student.channel_counts[0] != n_channels:
        raise DataError(
            f"session {session} has {n_channels} LFP channels but --init {init_dir.name} was "
            f"trained on {student.channel_counts[0]}"
        )
    return student.train()


def _check_has_spikes(path: Path, session: str) -> int:
    """Unit count of the session file; DataError when it holds no units or no spikes."""
    with SessionReader(path) as reader:
        spikes = reader.read("spikes")  # (n_segments, L, U) uint8
    if spikes.shape[-1] == 0 or not np.any(spikes):
        raise DataError(
            f"session {session} ({path}) has no spikes; distillation needs simultaneously "
            "recorded spikes: pick a session with sorted units"
        )
    return int(spikes.shape[-1])


def _named(config: DistillRunConfig, name: str) -> DistillRunConfig:
    return dataclasses.replace(config, name=name)


def _fit(
    config: Any,
    model: nn.Module,
    objective: Any,
    train_set: PairedDataset,
    val_set: PairedDataset,
    home: Path,
    runtime: Runtime,
    resume: bool,
    reporter: ProgressReporter,
    extra: dict[str, Any] | None = None,
) -> TrainRunResult:
    if len(train_set) == 0:
        raise DataError(f"the sessions {train_set.sessions} hold no train segments")
    run_dir = prepare_run_dir(
        home, config.name, dump_yaml(config), resume=resume, is_main=runtime.dist.is_main
    )
    result = train(
        model=model,
        objective=objective,
        train_data=paired_source(train_set),
        val_data=paired_source(val_set),
        config=config.training,
        runtime=runtime,
        run_dir=run_dir,
        model_kind=model.kind,
        model_config=model.config,
        resume=resume,
        param_groups=model.parameter_groups(config.training.weight_decay),
        extra_meta={
            "sessions": model.session_counts,
            "data": {
                "dataset": config.data.dataset,
                "sessions": list(train_set.sessions),
                "files": [str(path) for path in train_set.files],
            },
            "bin_seconds": _bin_seconds(train_set),
            **(extra or {}),
        },
        callback=TrainingProgress(reporter, f"train {model.kind} {config.name}"),
    )
    return TrainRunResult(run_dir=run_dir, train=result)


def _bin_seconds(dataset: PairedDataset) -> float:
    with SessionReader(dataset.files[0]) as reader:
        return float(reader.attrs["bin_seconds"])
