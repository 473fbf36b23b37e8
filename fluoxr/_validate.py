"""Shared argument checks, so that every public function words its errors the same way.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that starts with the argument's name, says
what was expected and quotes what was given.

Only plain values are checked here (numbers, choices, frame rates); this module
knows nothing of videos, so the data model (:mod:`fluoxr._video`, which checks
videos, traces and images where they enter) can depend on it without a cycle.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(
    value: Any,
    name: str,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``.

    Floats with an integral value (``3.0``) are accepted; ``3.5`` is a
    ``ValueError``; strings, ``None`` and booleans are a ``TypeError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {_short(value)} of type {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise ValueError(f"{name} must be an integer, got {_short(value)}")
        out = int(value)
    if min_value is not None and out < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {out}")
    if max_value is not None and out > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {out}")
    return out


def check_number(
    value: Any,
    name: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """Return ``value`` as a finite float within the given bounds, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_short(value)} of type {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if gt is not None and not out > gt:
        raise ValueError(f"{name} must be > {gt}, got {value!r}")
    if ge is not None and not out >= ge:
        raise ValueError(f"{name} must be >= {ge}, got {value!r}")
    if lt is not None and not out < lt:
        raise ValueError(f"{name} must be < {lt}, got {value!r}")
    if le is not None and not out <= le:
        raise ValueError(f"{name} must be <= {le}, got {value!r}")
    return out


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name``."""
    if not isinstance(value, (str, numbers.Number, type(None))) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {_short(value)}")
    return value


def check_fps(fps: Any, name: str = "fps") -> float | None:
    """``None`` (unknown) or a positive frame rate in Hz."""
    if fps is None:
        return None
    return check_number(fps, name, gt=0)
