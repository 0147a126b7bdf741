"""Presets: YAML files in presets/ (shipped inside the package), or a path to one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from neuralcli.config.build import _closest
from neuralcli.errors import ConfigError


def preset_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "presets"


def available_presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """Read a preset by name (`lorenz`) or by path (`my.yaml`) into a dict."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        path = candidate
        if not path.is_file():
            raise ConfigError(f"--preset {name_or_path}: file not found")
    else:
        path = preset_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            names = available_presets()
            raise ConfigError(
                f"--preset {name_or_path}: no such preset{_closest(name_or_path, names)} "
                f"(known: {', '.join(names)})"
            )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections")
    return data
