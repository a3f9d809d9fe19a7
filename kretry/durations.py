"""Durations as users write them (``5``, ``0.5``, ``timedelta(minutes=1)``, ``"500ms"``, ``"1m"``), in seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from kretry.errors import DurationError

Duration = int | float | timedelta | str

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object, *, what: str = "duration") -> float:
    """Seconds as a float; anything else than a finite, non-negative duration raises DurationError naming it."""
    if isinstance(value, bool):  # a bool is an int to Python, never a duration to a user
        raise DurationError(f"{what}: {value!r} is not a duration")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            raise DurationError(f"{what}: {value!r} is too large for a duration") from None
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise DurationError(
                f"{what}: {value!r} is not a duration; write a number with a unit: 500ms, 5s, 1m, 2h, 1d"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise DurationError(f"{what}: {value!r} is not a duration (expected seconds, a timedelta or '5s')")
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(f"{what}: {value!r} must be a finite, non-negative duration")
    return seconds
