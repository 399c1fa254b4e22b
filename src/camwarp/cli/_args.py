"""Number types for argparse (``type=``) shared by the sub-commands: each turns a flag's text into a
checked number, or raises ``argparse.ArgumentTypeError`` saying what was expected and what was given,
which the parser reports as one line naming the flag (exit code 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

__all__ = ["positive_int", "nonnegative_int", "positive_float", "finite_float"]

_T = TypeVar("_T", int, float)


def _number(text: str, kind: Callable[[str], _T], ok: Callable[[_T], bool], expected: str) -> _T:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """``"64"`` -> ``64``: an integer > 0 (any text ``int()`` reads)."""
    return _number(text, int, lambda v: v > 0, "a positive integer")


def nonnegative_int(text: str) -> int:
    """``"0"`` -> ``0``: an integer >= 0 (any text ``int()`` reads)."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """``"0.05"`` -> ``0.05``: a finite number > 0."""
    return _number(text, float, lambda v: 0 < v < math.inf, "a positive finite number")


def finite_float(text: str) -> float:
    """``"-3.5"`` -> ``-3.5``: any finite number (not ``nan`` or ``inf``)."""
    return _number(text, float, math.isfinite, "a finite number")
