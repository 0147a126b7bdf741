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
from neuralcli.data.human_dataset import HumanSettings
from neuralcli.data.mc_maze_dataset import McMazeSettings
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.sources.synthetic_maze import SyntheticMazeSettings
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import AutoencoderConfig
from neuralcli.models.denoiser import DenoiserConfig
from neuralcli.models.spike_history import SpikeHistoryConfig
from neuralcli.training.ae_objective import AutoencoderLossConfig
from neuralcli.training.config import TrainingConfig
from neuralcli.training.diffusion_objective import DiffusionLossConfig

DATASETS = ("lorenz", "mc_maze", "human", "synthetic-maze")
STAGES = ("ae", "diffusion", "spike-history", "teacher", "student", "distill")


@dataclass
class DataConfig:
    """Which dataset trains the model, and the settings that produce it."""

    dataset: str = "lorenz"
    lorenz: LorenzSettings = field(default_factory=LorenzSettings)
    mc_maze: McMazeSettings = field(default_factory=McMazeSettings)
    human: HumanSettings = field(default_factory=HumanSettings)
    synthetic_maze: SyntheticMazeSettings = field(default_factory=SyntheticMazeSettings)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(
                f"data.dataset {self.dataset!r} is not supported; use one of {', '.join(DATASETS)}"
            )

    def settings(self) -> Any:
        """The settings object of the chosen dataset (section `synthetic_maze` for
        synthetic-maze)."""
        return getattr(self, self.section_of(self.dataset))

    @staticmethod
    def section_of(dataset: str) -> str:
        """The field holding `dataset`'s settings: its name with - as _ (synthetic_maze)."""
        return dataset.replace("-", "_")


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


def _spike_history_training() -> TrainingConfig:
    """LDNS §5: AdamW lr 0.1, weight decay 0.01, 3000 full-batch epochs, no clipping.

    The recipe names no schedule; no warm-up and a horizon 1000× the run keep the loop's cosine
    factor above 0.99999, i.e. a constant learning rate.
    """
    return TrainingConfig(
        epochs=3000,
        lr=0.1,
        weight_decay=0.01,
        warmup_epochs=0,
        lr_horizon_factor=1000.0,
        grad_clip=0.0,
        val_every_epochs=100,
        checkpoint_every_steps=500,
        log_every_steps=50,
    )


@dataclass
class SpikeHistoryRunConfig:
    """A spike-history run. `full_batch`: one step per epoch over every training trial (the
    published recipe), overriding training.batch_size; false trains on mini-batches of
    training.batch_size. `rates_batch_size`: trials per AE forward pass when computing rates."""

    name: str = "spike-history-monkey"
    model: SpikeHistoryConfig = field(default_factory=SpikeHistoryConfig)
    training: TrainingConfig = field(default_factory=_spike_history_training)
    full_batch: bool = True
    rates_batch_size: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.full_batch, bool):
            raise ValueError(f"full_batch must be true or false, got {self.full_batch!r}")
        size = self.rates_batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"rates_batch_size must be a positive integer, got {size!r}")


STAGE_SCHEMAS: dict[str, type] = {
    "ae": AutoencoderRunConfig,
    "diffusion": DiffusionRunConfig,
    "spike-history": SpikeHistoryRunConfig,
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
