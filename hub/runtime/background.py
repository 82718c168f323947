"""Tasks a component starts and does not await at once, kept so that it can wait for them when it
stops (the gate's detached handlers, the ingest path's done marks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class Background:
    """The running tasks of one component."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Awaitable[None]) -> asyncio.Future[None]:
        """Run `work` in its own task, held here until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout_s: float) -> int:
        """Wait for the running tasks; cancel what still runs after `timeout_s`; how many were cancelled."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)
