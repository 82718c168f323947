"""Group commit (`hub.runtime.groupcommit`) for Lua script calls: the calls that concurrent requests make
while a round trip is under way go to Valkey together, as one pipeline, on the next one.

Under load the ingress makes two script calls per request (the claim, then the `done` mark); one
round trip per call costs more CPU in redis-py than the scripts cost in Valkey. Batches are sent
one at a time, in order, on one connection, so a call never overtakes one made before it: a done
mark and a later claim of the same key reach Valkey in that order.

The dedupe store runs its scripts once per key (cluster-safe); the limiter's admission is one run
over its keys. Scripts are sent as bare EVALSHAs; a command that meets NOSCRIPT (Valkey restarted,
or its script cache was flushed) did not run, so its script is loaded and only those commands are
sent again: a script never runs twice for a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from hub.runtime.groupcommit import GroupCommit


@dataclass(frozen=True, slots=True)
class _Call:
    script: AsyncScript
    key_sets: list[Sequence[str]]
    """The keys of each EVALSHA this call makes."""
    args: Sequence[str | int]


class ScriptBatcher:
    """Runs script calls in pipelines shared by concurrent callers."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._rounds: GroupCommit[_Call, list[Any]] = GroupCommit(
            self._send, name="valkey script batches", cancelled=lambda: RedisError("the batch was cancelled")
        )

    async def call(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        """The result of one run of the script over all of `keys`; RedisError when Valkey could not answer."""
        return (await self._rounds.submit(_Call(script, [keys], args)))[0]

    async def call_per_key(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> list[Any]:
        """The script's result for each key (one run per key), in order.

        A script error for one key (including NOSCRIPT after a reload failed) is raised to this
        caller only; the other calls of the batch are unaffected.
        """
        return await self._rounds.submit(_Call(script, [[key] for key in keys], args))

    async def _send(self, batch: list[_Call]) -> list[list[Any] | BaseException]:
        results: list[list[Any]] = [[None] * len(call.key_sets) for call in batch]
        unsent = [(n, index) for n, call in enumerate(batch) for index in range(len(call.key_sets))]
        for attempt in range(2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for n, index in unsent:
                    call, keys = batch[n], batch[n].key_sets[index]
                    pipe.evalsha(call.script.sha, len(keys), *keys, *call.args)
                replies = await pipe.execute(raise_on_error=False)
            for (n, index), reply in zip(unsent, replies, strict=True):
                results[n][index] = reply
            unsent = [(n, index) for n, index in unsent if isinstance(results[n][index], NoScriptError)]
            if not unsent or attempt:
                break
            for script in {batch[n].script.sha: batch[n].script for n, _ in unsent}.values():
                await self._redis.script_load(script.script)  # NOSCRIPT: that command did not run
        return [next((r for r in per_key if isinstance(r, RedisError)), per_key) for per_key in results]
