"""Reading fields of a provider's payload: required and optional strings, nested paths, times.

Shared by the adapters so that one rule holds everywhere: a field that is missing, of the wrong type
or empty reads as absent (None), never as a crash, and only a field the event cannot do without is a
PayloadError. Times are the strict part: a timestamp that overflows, is out of range, has no zone
(unless the provider documents one) or is not a number of the expected kind is no time at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any

from adapters.base import InboundRequest
from adapters.errors import PayloadError


def required_str(body: dict[str, Any], key: str, *, what: str = "event") -> str:
    """`body[key]` as a non-empty string, else a PayloadError naming `key` (`what`: the event,
    the notification, ..., as the provider calls the object)."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError("invalid_event", f"the {what} has no string {key!r}")
    return value


def required_header(request: InboundRequest, name: str) -> str:
    """An informational header the event cannot do without (its type, its id), else a PayloadError."""
    value = request.header(name)
    if not value:
        raise PayloadError("invalid_event", f"header {name} is missing")
    return value


def nested_str(container: Any, *path: str) -> str | None:
    """The non-empty string at `path` through nested objects, else None (a missing level, a list
    or a value of another type on the way all read as absent)."""
    value = container
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def first_str(container: Any, *paths: tuple[str, ...]) -> str | None:
    """The first non-empty string found at one of `paths` (each a path for `nested_str`)."""
    for path in paths:
        if (value := nested_str(container, *path)) is not None:
            return value
    return None


def iso_time(value: Any, *, pattern: re.Pattern[str] | None = None, naive_tz: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 / RFC 3339 time with an offset (`Z` included), else None.

    `pattern`: the exact textual form the provider writes, checked first (Python's `fromisoformat`
    accepts much more than RFC 3339). `naive_tz`: the zone of a time written without an offset, for a
    provider that documents one; without it a naive time is refused, as its instant is unknown.
    """
    if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None if naive_tz is None else moment.replace(tzinfo=naive_tz)
    return moment


def first_time(values: Iterable[Any], parse: Callable[[Any], datetime | None] = iso_time) -> datetime | None:
    """The first of `values` that `parse` reads as a time (providers that fall back field by field)."""
    for value in values:
        if (moment := parse(value)) is not None:
            return moment
    return None


def unix_time(value: Any, *, unit: str = "s", fractional: bool = False) -> datetime | None:
    """Unix time in `unit` (`s` or `ms`) as a UTC datetime, else None.

    Only a JSON integer is a timestamp (`fractional`: a float too); a bool, a string or a number out of
    datetime's range (a year past 9999, an overflow) is no time rather than an error.
    """
    if type(value) is not int and not (fractional and type(value) is float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000 if unit == "ms" else value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
