"""Checks of simulation settings: one-line ValueErrors naming the setting (the config
builder turns them into ConfigErrors)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_int(name: str, value: Any, minimum: int) -> None:
    """`value` is an integer (not a bool) >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_float(name: str, value: Any, *, minimum: float, inclusive: bool) -> None:
    """`value` is a finite number above `minimum` (or equal to it when inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < minimum or (value == minimum and not inclusive):
        relation = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {value}")


def check_range(
    name: str, value: Any, *, minimum: float, inclusive: bool = True, integer: bool = False
) -> None:
    """`value` is two numbers (low, high), low <= high, each checked like check_int (integer)
    or check_float against `minimum`."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{name} must be two numbers (low, high), got {value!r}")
    for item in value:
        if integer:
            check_int(name, item, int(minimum))
        else:
            check_float(name, item, minimum=minimum, inclusive=inclusive)
    if value[0] > value[1]:
        raise ValueError(f"{name} must have low <= high, got {tuple(value)}")
