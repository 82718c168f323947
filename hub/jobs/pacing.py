"""A token bucket: what a job sends is paced to `HUB_REPLAY_RATE` events per second, so a replay or a
redrive cannot starve live traffic of the bus and the targets."""

from __future__ import annotations

import asyncio
import time

BURST_S = 0.1
"""The bucket holds a tenth of a second of sends: enough to batch, too little to flood."""


class TokenBucket:
    """`rate` tokens per second, at most `rate * BURST_S` (and at least one) saved up."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate * BURST_S)
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    async def take(self) -> None:
        """Wait until a token is there, and take it."""
        while True:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)
