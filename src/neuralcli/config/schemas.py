"""Run configurations: what a preset section and `--set` overrides fill in.

A preset file (presets/<name>.yaml) has a shared `data` section and one section per
stage (`ae`, `diffusion`; `teacher`, `student`, `distill` in config/distill_schemas.py);
each stage section is checked against its dataclass here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neuralcli.config.build import _closest, build_config
from neuralcli.config.distill_schemas import DistillRunConfig, StudentRunConfig, TeacherRunConfig
from neuralcli.config.presets import load_preset
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import AutoencoderConfig
from neuralcli.models.denoiser import DenoiserConfig
from neuralcli.training.ae_objective import AutoencoderLossConfig
from neuralcli.training.config import TrainingConfig
from neuralcli.training.diffusion_objective import DiffusionLossConfig

DATASETS = ("lorenz",)
STAGES = ("ae", "diffusion", "teacher", "student", "distill")


@dataclass
class DataConfig:
    """Which dataset trains the model, and the settings that produce it."""

    dataset: str = "lorenz"
    lorenz: LorenzSettings = field(default_factory=LorenzSettings)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(
                f"data.dataset {self.dataset!r} is not supported; use one of {', '.join(DATASETS)}"
            )

    def settings(self) -> Any:
        """The settings object of the chosen dataset."""
        return getattr(self, self.dataset)


@dataclass
class AutoencoderRunConfig:
    name: str = "ae-lorenz"
    data: DataConfig = field(default_factory=DataConfig)
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    loss: AutoencoderLossConfig = field(default_factory=AutoencoderLossConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


@dataclass
class LatentConfig:
    """How AE latents become diffusion training data (LDNS §6)."""

    clip: float | None = 5.0
    encode_batch_size: int = 256


@dataclass
class DiffusionRunConfig:
    name: str = "diffusion-lorenz"
    ae: str | None = None
    latents: LatentConfig = field(default_factory=LatentConfig)
    model: DenoiserConfig = field(default_factory=DenoiserConfig)
    loss: DiffusionLossConfig = field(default_factory=DiffusionLossConfig)
    training: TrainingConfig = field(
        default_factory=lambda: TrainingConfig(
            epochs=1000, warmup_epochs=50, grad_clip=1.0, ema=True, val_every_epochs=50
        )
    )


STAGE_SCHEMAS: dict[str, type] = {
    "ae": AutoencoderRunConfig,
    "diffusion": DiffusionRunConfig,
    "teacher": TeacherRunConfig,
    "student": StudentRunConfig,
    "distill": DistillRunConfig,
}


def stage_config(
    preset: str,
    stage: str,
    overrides: list[str] | None = None,
    assign: dict[str, Any] | None = None,
) -> Any:
    """Build the config of one stage (a key of STAGE_SCHEMAS) from a preset plus overrides.

    `assign` sets top-level values verbatim (e.g. name, ae path from CLI options), after the
    preset and before `overrides`.
    """
    data = load_preset(preset)
    for key in data:
        if key not in ("data", *STAGES):
            raise ConfigError(
                f"preset {preset}: unknown section {key!r}{_closest(key, ['data', *STAGES])}"
            )
    if stage not in data:
        present = [s for s in STAGES if s in data]
        raise ConfigError(
            f"preset {preset} has no {stage!r} section (it has: {', '.join(present) or 'none'}); "
            f"pick a preset made for `train {stage}`"
        )
    section = dict(data[stage] or {})
    schema = STAGE_SCHEMAS[stage]
    if "data" in data and "data" in {f for f in schema.__dataclass_fields__}:
        section.setdefault("data", data["data"])
    for key, value in (assign or {}).items():
        if value is not None:
            section[key] = value
    return build_config(schema, section, overrides)
