"""Group commit: what concurrent callers submit while one round trip is out goes together in the
next, one round at a time, in the order it was submitted.

Under load a round carries the work of many callers, so the cost of a round trip (a Valkey
pipeline, a NATS PING/PONG) is paid once per round instead of once per caller; when idle a
submission goes out at once. The hub's Valkey script calls (`hub.ingest.scriptbatch`) and the gate's
flushes (`hub.gate.sharedflush`) use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

SendRound = Callable[[list[Item]], Awaitable[list[Result | BaseException]]]
"""Sends one round; one result per item, or the error that item alone met."""


class GroupCommit(Generic[Item, Result]):
    """Submits items in rounds through `send`; each caller gets its own item's result."""

    def __init__(self, send: SendRound[Item, Result], *, name: str, cancelled: Callable[[], Exception]) -> None:
        """`cancelled` makes the error the callers of a round get when the round is cancelled
        (at shutdown): one their code already handles as "the other side did not answer"."""
        self._send = send
        self._name = name
        self._cancelled = cancelled
        self._queued: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        """The item's result once its round is back; raises its own error or the round's."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((item, done))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_rounds(), name=self._name)
        return await done  # a cancelled caller cancels only its own future; the round goes on

    async def _send_rounds(self) -> None:
        try:
            while self._queued:
                round_, self._queued = self._queued, []
                try:
                    results = await self._send([item for item, _ in round_])
                except BaseException as exc:  # every caller of the round learns of it, then it propagates
                    error = exc if isinstance(exc, Exception) else self._cancelled()
                    results = [error] * len(round_)
                    if not isinstance(exc, Exception):
                        _settle(round_, results)
                        raise
                _settle(round_, results)
        finally:
            self._sender = None


def _settle(round_: list[tuple[Item, asyncio.Future[Result]]], results: list[Result | BaseException]) -> None:
    for (_, done), result in zip(round_, results, strict=True):
        if done.done():
            continue
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)
