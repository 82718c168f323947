"""Waiting for an event with a time limit, without losing a cancellation.

On Python 3.11 `asyncio.wait_for` can turn a cancellation that arrives just as its timeout expires
into a TimeoutError: a loop that suppresses TimeoutError then never stops, and whoever cancelled
it waits for ever (a hub whose start-up failed did not exit). `asyncio.timeout` tells its own
expiry from an outside cancellation, so the cancellation always gets through.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether `event` was set within `timeout_s` seconds."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
