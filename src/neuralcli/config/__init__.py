"""Dataclass schemas, presets from presets/*.yaml, dotted `--set` overrides, validation."""

from neuralcli.config.build import build_config, config_to_dict, dump_yaml
from neuralcli.config.presets import available_presets, load_preset, preset_dir

__all__ = [
    "available_presets",
    "build_config",
    "config_to_dict",
    "dump_yaml",
    "load_preset",
    "preset_dir",
]
