from dataclasses import dataclass, field

import pytest

from neuralcli.config.build import build_config, dump_yaml
from neuralcli.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    epochs: int = 10
    ema: bool = False
    clip: float | None = 5.0
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("inner.epochs must be at least 1")


@dataclass
class Outer:
    name: str = "run"
    training: Inner = field(default_factory=Inner)


def test_defaults_and_nested_values():
    config = build_config(Outer, {"name": "x", "training": {"lr": 5e-4, "betas": [0.8, 0.9]}})
    assert config.name == "x"
    assert config.training.lr == 5e-4
    assert config.training.betas == (0.8, 0.9)
    assert config.training.epochs == 10


def test_overrides_are_typed():
    config = build_config(
        Outer,
        {},
        ["training.lr=3e-4", "training.epochs=7", "training.ema=true", "training.clip=null"],
    )
    assert config.training.lr == pytest.approx(3e-4)
    assert config.training.epochs == 7
    assert config.training.ema is True
    assert config.training.clip is None


def test_override_wins_over_preset_value():
    config = build_config(Outer, {"training": {"lr": 1.0}}, ["training.lr=2"])
    assert config.training.lr == 2.0


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"training\.lrr.*did you mean 'training\.lr'"):
        build_config(Outer, {"training": {"lrr": 1.0}})
    with pytest.raises(
        ConfigError, match=r"--set training\.epoch: unknown key; did you mean 'training\.epochs'"
    ):
        build_config(Outer, {}, ["training.epoch=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.epochs=2.5", "training.epochs: expected an integer"),
        ("training.lr=fast", "training.lr: expected a number"),
        ("training.ema=3", "training.ema: expected true or false"),
        ("training.epochs=0", "epochs must be at least 1"),
        ("training", "expected KEY=VALUE"),
        ("name.x=1", "is a value, not a section"),
    ],
)
def test_bad_values_are_one_line_config_errors(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        build_config(Outer, {}, [override])
    assert "\n" not in str(info.value)


def test_dump_yaml_round_trips():
    import yaml

    config = build_config(Outer, {}, ["training.lr=0.5"])
    again = build_config(Outer, yaml.safe_load(dump_yaml(config)))
    assert again == config


def test_a_partial_section_starts_from_the_fields_own_default_not_the_class_defaults():
    from neuralcli.config.schemas import DiffusionRunConfig
    from neuralcli.training.config import TrainingConfig

    config = build_config(DiffusionRunConfig, {"training": {"epochs": 7}})
    assert config.training.epochs == 7
    stage_default = DiffusionRunConfig().training
    assert config.training.ema is True and stage_default.ema is True
    assert config.training.warmup_epochs == stage_default.warmup_epochs
    assert config.training.warmup_epochs != TrainingConfig().warmup_epochs
