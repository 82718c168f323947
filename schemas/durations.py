"""Duration fields written as `300s`, `72h`, `1h30m`, `250ms` (or a number of seconds)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"
MAX_SECONDS = 100 * 365 * 86400.0


def parse_duration(value: Any) -> timedelta:
    """`72h`, `1h30m`, `250ms` or a number of seconds; anything else is a ValueError."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a string like 300s or 72h, or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(DURATION_PATTERN, value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value.strip()))
    else:
        raise ValueError(f"{value!r} is not a duration like 300s, 5m, 72h or 1h30m")
    if not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"{value!r} is out of range for a duration (0 to 100 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling: `72h`, `90s`, `250ms`."""
    ms = round(value.total_seconds() * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "number", "minimum": 0}],
            "description": "A duration: 300s, 5m, 72h, 1h30m, 250ms, or a number of seconds",
        }
    ),
]
