"""Retry delays: exponential backoff with equal jitter, and a target's own `Retry-After`.

Shared by the gate (NAK delays of failed dispatches) and the poll scheduler, so both take plain
seconds and know nothing of routes or messages.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

_MAX_EXPONENT = 1000
"""2.0**1000 is still a finite float (a bigger power overflows); long before it, any sane cap applies."""
_DELTA_SECONDS = re.compile(r"[+-]?\d+(\.\d+)?")
"""Strictly digits (RFC 9110 says an integer; a fraction or a sign is tolerated), never `inf`/`nan`."""


def backoff_delay(
    attempt: int,
    initial_s: float,
    max_s: float,
    *,
    jitter: bool = True,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retry number `attempt` (1 = the first retry).

    The delay doubles from `initial_s` up to `max_s`. With `jitter` it is drawn uniformly from
    [d/2, d] ("equal jitter"): retries of a burst spread out, yet none comes back sooner than
    half the planned delay, so a struggling target still gets its breathing room.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if initial_s < 0 or max_s < 0:
        raise ValueError("backoff delays cannot be negative")
    delay = min(initial_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT), max_s)
    if not jitter:
        return delay
    half = delay / 2
    return half + rng() * half


def parse_retry_after(value: str | None, *, now: float | None = None, cap_s: float = 3600.0) -> float | None:
    """Seconds a `Retry-After` header asks for, or None when it is absent or unreadable.

    Accepts delta-seconds and an HTTP-date (compared with `now`, Unix time, default the clock).
    A date in the past or a negative number means "now" (0.0); anything is capped at `cap_s` so a
    hostile or confused target cannot park a message for days.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:  # "-0000" in an HTTP-date still means UTC
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), cap_s)
