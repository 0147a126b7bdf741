"""Rebuilding a model from a run directory: config from model.json, weights from safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from torch import nn

from neuralcli.errors import RunDirError
from neuralcli.runtime.checkpoint import load_state_dict_checked, load_weights, read_model_meta

M = TypeVar("M", bound=nn.Module)


def build_model_config(cls: type, values: object, run_dir: str | Path) -> object:
    """The config dataclass stored in model.json, or RunDirError if it does not fit `cls`."""
    if not isinstance(values, dict):
        raise RunDirError(f"{run_dir}: model.json 'config' is not a mapping; retrain that run")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise RunDirError(
            f"{run_dir}: model.json config is invalid ({err}); retrain that run"
        ) from None


def load_pretrained(
    model_cls: type[M], config_cls: type, run_dir: str | Path, *, device="cpu"
) -> M:
    """`model_cls(config=...)` with the weights of run_dir, in eval mode on `device`.

    RunDirError if the run is missing, of another kind, or its config/weights do not fit.
    """
    meta = read_model_meta(run_dir, expected_kind=model_cls.kind)
    model = model_cls(config=build_model_config(config_cls, meta["config"], run_dir))
    load_state_dict_checked(model, load_weights(run_dir, device="cpu"), Path(run_dir))
    return model.to(device).eval()
