"""A loopback HTTP target that applies each `Idempotency-Key` once, as a well-behaved receiver does.

It records every request it received (key and CloudEvents `ce-id`) and what it applied: the first
request with a given key is applied, a repeat is answered 200 without applying again. So the gate's
at-least-once delivery shows up as repeats here, and a real duplicate (the same event applied under
two keys) as one event id applied twice. `hold_first` makes the target apply the first request and
then keep its answer back until released, which lets a scenario kill the hub between dispatch and ack;
`refuse` answers 422 (permanent) for the given event ids.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class IdempotentTarget:
    url: str = ""
    received: list[tuple[str, str]] = field(default_factory=list)
    """(Idempotency-Key, ce-id) of every request, in order."""
    applied: dict[str, str] = field(default_factory=dict)
    """Idempotency-Key -> ce-id, for each key applied (once)."""
    refuse: set[str] = field(default_factory=set)
    """Event ids refused for good (422, not applied): a poison invocation."""
    hold_first: bool = False
    held: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the first request is applied and its answer is being held."""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers.get("Idempotency-Key", "")
        event_id = request.headers.get("ce-id", "")
        self.received.append((key, event_id))
        if event_id in self.refuse:
            return web.Response(status=422, text="cannot apply this event")
        if key in self.applied:
            return web.Response(status=200, text="already applied")
        self.applied[key] = event_id
        if self.hold_first and not self.held.is_set():
            self.held.set()
            await self.release.wait()  # the answer is held: the sender may die before it comes
        return web.Response(status=200, text="applied")

    def applied_per_event(self) -> Counter[str]:
        """How many times each event id was applied (under any key)."""
        return Counter(self.applied.values())
