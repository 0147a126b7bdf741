"""Run-directory files: model.safetensors + model.json (weights and how to rebuild them),
state.pt (everything needed to resume), config.yaml, metrics.jsonl.

Weights are safetensors so loading a model never runs code; state.pt is only read for
`--resume` from a run directory the user created.
"""

from __future__ import annotations

import io
import json
import platform
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from neuralcli import __version__
from neuralcli.errors import RunDirError
from neuralcli.runtime.files import atomic_path, atomic_write_bytes, atomic_write_text

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
STATE_FILE = "state.pt"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"


def versions() -> dict[str, str]:
    return {
        "neuralcli": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_model(
    run_dir: str | Path,
    state_dict: dict[str, torch.Tensor],
    *,
    kind: str,
    config: Any,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write model.safetensors and model.json atomically.

    `config` is the model's config dataclass (or a dict); `extra` adds fields such as
    step, metrics, data settings hash, latent statistics.
    """
    run_dir = Path(run_dir)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    atomic_write_bytes(run_dir / WEIGHTS_FILE, save(tensors))
    meta = {
        "kind": kind,
        "config": asdict(config) if is_dataclass(config) else dict(config),
        "versions": versions(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    meta.update(extra or {})
    atomic_write_text(run_dir / META_FILE, json.dumps(meta, indent=2, default=json_default) + "\n")


def read_model_meta(run_dir: str | Path, *, expected_kind: str | None = None) -> dict[str, Any]:
    """Read model.json of a run directory, with errors that say what to do."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(
            f"run directory {run_dir} does not exist; pass a folder made by `neuralcli train`"
        )
    path = run_dir / META_FILE
    if not path.is_file():
        raise RunDirError(
            f"{path} is missing: {run_dir} is not a finished run; train it or pass another run"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirError(
            f"{path} is corrupt ({err.__class__.__name__}); retrain or restore that run"
        ) from None
    if not isinstance(meta, dict) or "kind" not in meta or "config" not in meta:
        raise RunDirError(f"{path} lacks 'kind' or 'config'; it was not written by neuralcli")
    if expected_kind is not None and meta["kind"] != expected_kind:
        raise RunDirError(
            f"{run_dir} holds a {meta['kind']!r} model, not {expected_kind!r}; "
            f"pass a {expected_kind} run"
        )
    return meta


def load_weights(
    run_dir: str | Path, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    path = Path(run_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise RunDirError(f"{path} is missing; the run did not finish saving its weights")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise RunDirError(f"{path} is corrupt ({err}); retrain or restore that run") from None


def load_state_dict_checked(
    module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path
) -> None:
    """load_state_dict(strict) with a one-line error instead of a traceback."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise RunDirError(f"{source}: weights do not match the model config ({first})") from None


def save_state(run_dir: str | Path, state: dict[str, Any]) -> None:
    """Atomically write state.pt (optimizer, scheduler, RNG, step, raw weights)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(run_dir) / STATE_FILE, buffer.getvalue())


def load_state(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise RunDirError(f"{path} is missing: nothing to resume; start without --resume")
    try:
        # Our own file from a run directory the user points at; it holds RNG states
        # (numpy arrays, python tuples), which the weights-only unpickler rejects.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a truncated file
        raise RunDirError(
            f"{path} is corrupt ({err.__class__.__name__}); delete it and start again"
        ) from None


def append_metrics(run_dir: str | Path, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=json_default) + "\n")


def write_json(path: str | Path, payload: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=json_default) + "\n", encoding="utf-8")


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for numpy/torch scalars and arrays, paths, dataclasses."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value):
        return asdict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
