"""One NATS flush for every core publish made before it.

A core publish is only known to have reached the server after a flush (a PING answered by a
PONG). When many invocations are dispatched at once, each waiting for its own PING costs a round
trip and a future apiece; a flush started after a publish covers it as well as any other flush,
so the callers that queue up while one flush is under way share the next one.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NATS


class SharedFlush:
    """Coalesces the flushes of concurrent callers, one round trip at a time."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._waiting: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def flush(self, timeout_s: float) -> None:
        """Return once the server has everything this connection sent before the call.

        Raises what nats-py's flush raises (a timeout, a closed connection). The round that a call
        joins uses the timeout of the call that started it.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(timeout_s), name="shared nats flush")
        await waiter

    async def _flush_all(self, timeout_s: float) -> None:
        try:
            while self._waiting:
                round_, self._waiting = self._waiting, []
                try:
                    await self._nc.flush(timeout_s)  # type: ignore[arg-type]  # annotated int; any float works
                except BaseException as exc:
                    for waiter in round_:
                        if not waiter.done():
                            waiter.set_exception(exc if isinstance(exc, Exception) else TimeoutError())
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for waiter in round_:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            self._flusher = None
