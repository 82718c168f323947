"""Group commit for Lua script calls: the calls that concurrent requests make while a round trip
is under way go to Valkey together, as one pipeline, on the next one.

Under load the ingress makes two script calls per request (the claim, then the `done` mark); one
round trip per call costs more CPU in redis-py than the scripts cost in Valkey. Batches are sent
one at a time, in order, on one connection, so a call never overtakes one made before it: a done
mark and a later claim of the same key reach Valkey in that order.

The dedupe store runs its scripts once per key (cluster-safe); the limiter's admission is one run
over its keys. Scripts are sent as bare EVALSHAs; a
command that meets NOSCRIPT (Valkey restarted, or its script cache was flushed) did not run, so
its script is loaded and only those commands are sent again: a script never runs twice for a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError


@dataclass(slots=True)
class _Call:
    script: AsyncScript
    key_sets: list[Sequence[str]]
    """The keys of each EVALSHA this call makes."""
    args: Sequence[str | int]
    done: asyncio.Future[list[Any]]
    results: list[Any] = field(default_factory=list)


class ScriptBatcher:
    """Runs script calls in pipelines shared by concurrent callers."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[_Call] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """The result of one run of the script over all of `keys`; RedisError when Valkey could not answer."""
        return (await self._queue(script, [keys], args))[0]

    async def call_per_key(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> list[Any]:
        """The script's result for each key (one run per key), in order.

        A script error for one key (including NOSCRIPT after a reload failed) is raised to this
        caller only; the other calls of the batch are unaffected.
        """
        return await self._queue(script, [[key] for key in keys], args)

    async def _queue(self, script: AsyncScript, key_sets: list[Sequence[str]], args: Sequence[str | int]) -> list[Any]:
        call = _Call(script, key_sets, args, asyncio.get_running_loop().create_future())
        self._queued.append(call)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name="valkey script batches")
        return await call.done  # a cancelled caller cancels only its own future; the batch goes on

    async def _send_all(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    await self._send(batch)
                except BaseException as exc:  # every caller of the batch learns of it, then it propagates
                    error = exc if isinstance(exc, Exception) else RedisError("the batch was cancelled")
                    for call in batch:
                        if not call.done.done():
                            call.done.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
        finally:
            self._sender = None

    async def _send(self, batch: list[_Call]) -> None:
        for call in batch:
            call.results = [None] * len(call.key_sets)
        unsent = [(call, index) for call in batch for index in range(len(call.key_sets))]
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for call, index in unsent:
                    keys = call.key_sets[index]
                    pipe.evalsha(call.script.sha, len(keys), *keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
            for (call, index), reply in zip(unsent, replies, strict=True):
                call.results[index] = reply
            unsent = [(call, index) for call, index in unsent if isinstance(call.results[index], NoScriptError)]
            if not unsent or attempt:
                break
            for script in {call.script.sha: call.script for call, _ in unsent}.values():
                await self._redis.script_load(script.script)  # NOSCRIPT: that command did not run
        for call in batch:
            _settle(call)


def _settle(call: _Call) -> None:
    if call.done.done():
        return
    error = next((r for r in call.results if isinstance(r, RedisError)), None)
    if error is not None:
        call.done.set_exception(error)
    else:
        call.done.set_result(call.results)
