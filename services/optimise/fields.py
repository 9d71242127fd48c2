"""Reading an optimiser's JSON instance: numbers checked one field at a time, each refusal one line naming the field."""

from __future__ import annotations

import math
from typing import Any


def number(value: Any, name: str) -> float:
    """A finite JSON number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is missing" if value is None else f"{name} must be a number")
    return float(value)


def non_negative(value: Any, name: str) -> float:
    amount = number(value, name)
    if amount < 0:
        raise ValueError(f"{name} must not be negative (got {amount:g})")
    return amount


def whole(value: Any, name: str) -> int:
    """A whole number ≥ 0 (a count, a day, a horizon)."""
    if value is None:
        raise ValueError(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number")
    if value < 0:
        raise ValueError(f"{name} must not be negative (got {value})")
    return value
