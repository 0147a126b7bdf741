"""Build typed config dataclasses from plain dicts, with `--set a.b=value` overrides.

Unknown keys and badly typed values raise ConfigError naming the key and, for an
unknown key, the closest valid one.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar, Union

import yaml

from neuralcli.errors import ConfigError

T = TypeVar("T")


def build_config(
    cls: type[T], data: dict[str, Any] | None, overrides: list[str] | None = None
) -> T:
    """Return `cls` filled from `data` (nested dicts) with `overrides` (`a.b=value`) applied."""
    merged = _deep_copy(data or {})
    for item in overrides or []:
        _apply_override(cls, merged, item)
    return _build(cls, merged, prefix="")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.0)
    return f"; did you mean {match[0]!r}?" if match else ""


def _apply_override(cls: type, data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. training.lr=5e-4")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {item!r}: empty key")
    target_cls: Any = cls
    node = data
    for depth, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(target_cls)}
        dotted = ".".join(parts[: depth + 1])
        if part not in fields:
            prefix = ".".join(parts[:depth])
            options = [f"{prefix}.{n}" if prefix else n for n in fields]
            raise ConfigError(f"--set {dotted}: unknown key{_closest(dotted, options)}")
        field_type = _resolved_hints(target_cls)[part]
        if depth == len(parts) - 1:
            node[part] = yaml.safe_load(raw) if raw.strip() else None
            return
        inner = _dataclass_of(field_type)
        if inner is None:
            raise ConfigError(f"--set {dotted}: {dotted} is a value, not a section")
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {dotted} is a section, not a value")
        target_cls = inner


def _resolved_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass_of(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    if _is_union(tp):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _is_union(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is Union or origin is types.UnionType


def _build(cls: type[T], data: Any, prefix: str) -> T:
    where = prefix or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _resolved_hints(cls)
    for key in data:
        if key not in fields:
            dotted = f"{prefix}.{key}" if prefix else str(key)
            options = [f"{prefix}.{n}" if prefix else n for n in fields]
            raise ConfigError(f"unknown config key {dotted!r}{_closest(dotted, options)}")
    kwargs = {}
    for name, value in data.items():
        dotted = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(hints[name], _with_field_defaults(fields[name], value), dotted)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None


def _with_field_defaults(field: dataclasses.Field, value: Any) -> Any:
    """A partial section given for a field whose default is a factory-made dataclass starts
    from that default, not from the class defaults: `training: {epochs: 5}` keeps the
    stage's own learning rate."""
    factory = field.default_factory
    if not isinstance(value, dict) or factory is dataclasses.MISSING:
        return value
    default = factory()
    if not dataclasses.is_dataclass(default):
        return value
    return _merge(dataclasses.asdict(default), value)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _coerce(tp: Any, value: Any, dotted: str) -> Any:
    inner = _dataclass_of(tp)
    if inner is not None and isinstance(value, dict):
        return _build(inner, value, dotted)
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, dotted)
            except ConfigError as err:
                errors.append(err)
        raise errors[0] if errors else ConfigError(f"{dotted}: invalid value {value!r}")
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{dotted}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{dotted}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, f"{dotted}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{dotted}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{dotted}: expected text, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{dotted}: expected a section (mapping), got {value!r}")
    return value
