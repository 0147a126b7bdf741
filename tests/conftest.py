"""Shared fixtures: tiny presets so every end-to-end path runs in seconds on a CPU."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
import yaml

# Two xdist workers on two cores: one torch thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

TINY_PRESET = {
    "data": {
        "dataset": "lorenz",
        "lorenz": {"n_trials": 60, "length": 32, "n_neurons": 16, "seed": 3},
    },
    "ae": {
        "name": "ae-tiny",
        "model": {"n_neurons": 16, "hidden_channels": 32, "latent_channels": 4, "num_blocks": 1},
        "loss": {"mask_prob": 0.2, "latent_beta": 0.01, "latent_td_beta": 0.01},
        "training": {
            "epochs": 3,
            "warmup_epochs": 1,
            "batch_size": 16,
            "val_every_epochs": 1,
            "checkpoint_every_steps": 4,
            "log_every_steps": 2,
        },
    },
    "diffusion": {
        "name": "diffusion-tiny",
        "ae": "ae-tiny",
        "model": {"latent_channels": 4, "hidden_channels": 16, "num_blocks": 1},
        "training": {
            "epochs": 3,
            "warmup_epochs": 1,
            "batch_size": 16,
            "grad_clip": 1.0,
            "ema": True,
            "val_every_epochs": 1,
            "log_every_steps": 2,
        },
    },
}


@pytest.fixture(scope="session")
def tiny_preset_data() -> dict:
    return copy.deepcopy(TINY_PRESET)


@pytest.fixture
def tiny_preset(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_PRESET))
    return path
