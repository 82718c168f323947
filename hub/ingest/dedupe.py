"""Two-phase dedupe claims in Valkey: claim (`SET NX PX`), then `done` after the PubAck, or
release (only by the claim's owner) when the publish failed.

Each phase is one atomic script per key. The calls of concurrent requests share round trips
(`hub.ingest.scriptbatch`): under load one pipeline carries the claims and done marks of many requests.
When Valkey is unreachable the store fails open: claims come back `UNAVAILABLE`, the ingress
publishes anyway, and JetStream's duplicate window (keyed by the same `Nats-Msg-Id`) keeps a
retried delivery from landing twice. After a failure the store skips Valkey for a short
cool-down, so an outage costs one timeout per cool-down rather than one per request.

Every script touches only keys in one hash slot, named in its KEYS, so that the store also works on
a Valkey Cluster: a claim key and its `unsure` note share a hash tag (`unsure_key`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from hub.ingest.metrics import IngestMetrics
from hub.ingest.scriptbatch import ScriptBatcher

log = logging.getLogger(__name__)

DONE = b"done"
"""The value a delivered key holds for the dedupe window (the scripts below spell it 'done')."""

# KEYS: the claim key, its unsure note (`unsure_key`).
# Returns 0 claimed, 1 already done, 2 held by another request, 4 claimed after a failed publish.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 4 end
  return 0
end
if redis.call('GET', KEYS[1]) == 'done' then return 1 end
return 2
"""
_DONE = """
return redis.call('SET', KEYS[1], 'done', 'PX', ARGV[1])
"""
# Deletes the claim only if it still holds our token (never someone else's, never `done`).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Releases our claim, and remembers when a publish of the key failed with an unknown outcome.
# KEYS: the claim key, its unsure note (`unsure_key`).
_UNSURE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
"""


class Claim(enum.Enum):
    """The outcome of claiming one key."""

    CLAIMED = 0
    DONE = 1
    HELD = 2
    UNAVAILABLE = 3
    CLAIMED_AFTER_FAILURE = 4
    """Claimed, but an earlier publish of this key failed with an unknown outcome (it may be stored)."""

    @property
    def ours(self) -> bool:
        """Whether this request now holds the key."""
        return self in (Claim.CLAIMED, Claim.CLAIMED_AFTER_FAILURE)


def dedupe_key(tenant: str, connector: str, event_id: str) -> str:
    """`dd:<tenant>:<connector>:<id>` (docs/design.md §3); `dd:{<tenant>:<connector>:<id>}` when the id holds
    a brace, so that the key has a hash tag `unsure_key` can share (an id's key is then still its own:
    a brace-free id never yields a key with a brace)."""
    if "{" in event_id or "}" in event_id:
        return f"dd:{{{tenant}:{connector}:{event_id}}}"
    return f"dd:{tenant}:{connector}:{event_id}"


def unsure_key(key: str) -> str:
    """The key of a claim key's unsure note, in the claim key's hash slot (a Valkey Cluster runs a script
    only over keys of one slot): `<key>:unsure` when the key has a hash tag, else `{<key>}:unsure`."""
    if _hash_tag(key) is not None:
        return f"{key}:unsure"
    if "}" in key:  # no tag could name this key's slot; dedupe_key never makes such a key
        raise ValueError("a dedupe key holding '}' needs a hash tag (see dedupe_key)")
    return f"{{{key}}}:unsure"


def _hash_tag(key: str) -> str | None:
    """What Valkey hashes instead of the whole key: the text between the first `{` and the next `}`, if any."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if end > start + 1 else None


class DedupeStore:
    """Claims, done marks and releases for event ids, failing open when Valkey is away."""

    def __init__(self, redis: Redis, metrics: IngestMetrics, *, claim_ttl_s: float, cooldown_s: float = 2.0) -> None:
        self._batcher = ScriptBatcher(redis)
        self._metrics = metrics
        self._claim_ttl_ms = int(claim_ttl_s * 1000)
        self._cooldown_s = cooldown_s
        self._unavailable_until = 0.0
        self._claim = redis.register_script(_CLAIM)
        self._done = redis.register_script(_DONE)
        self._release = redis.register_script(_RELEASE)
        self._unsure = redis.register_script(_UNSURE)
        self._redis = redis

    async def claim(self, keys: Sequence[str], token: str) -> list[Claim]:
        """Claim every key for `token`; UNAVAILABLE for all when the store cannot answer."""
        if self._cooling_down():
            return [Claim.UNAVAILABLE] * len(keys)
        try:
            results = await self._with_unsure_note(self._claim, keys, [token, self._claim_ttl_ms])
        except RedisError as exc:
            self._failed("claim", exc)
            return [Claim.UNAVAILABLE] * len(keys)
        self._recovered()
        return [Claim(int(r)) for r in results]

    async def mark_done(self, keys: Sequence[str], window_s: float) -> None:
        """Remember the keys as delivered for the dedupe window (best effort: JetStream covers a miss)."""
        if not keys or self._cooling_down():
            return
        try:
            await self._batcher.call_per_key(self._done, keys, [int(window_s * 1000)])
        except RedisError as exc:
            self._failed("done", exc)

    async def release(self, keys: Sequence[str], token: str) -> None:
        """Give back our claims so the sender's retry can deliver (best effort: claims also expire)."""
        if not keys or self._cooling_down():
            return
        try:
            await self._batcher.call_per_key(self._release, keys, [token])
        except RedisError as exc:
            self._failed("release", exc)

    async def release_unsure(self, keys: Sequence[str], token: str, failed_at: float, window_s: float) -> None:
        """Give back our claims of keys whose publish failed with an unknown outcome, remembering when
        for the dedupe window: the sender's retry then checks the stream before it publishes again."""
        if not keys or self._cooling_down():
            return
        try:
            await self._with_unsure_note(self._unsure, keys, [token, f"{failed_at:.3f}", int(window_s * 1000)])
        except RedisError as exc:
            self._failed("release", exc)

    async def failed_at(self, key: str) -> float | None:
        """When a publish of the key last failed with an unknown outcome, if one did."""
        try:
            value = await self._redis.get(unsure_key(key))
        except RedisError as exc:
            self._failed("unsure", exc)
            return None
        return float(value) if value is not None else None

    async def _with_unsure_note(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> list[Any]:
        """One run per key over the key and its unsure note, in order; the runs are submitted together,
        so they go out in one pipeline. The first error is raised once every run is back."""
        runs = (self._batcher.call(script, [key, unsure_key(key)], args) for key in keys)
        results = await asyncio.gather(*runs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def _cooling_down(self) -> bool:
        return time.monotonic() < self._unavailable_until

    def _failed(self, operation: str, exc: RedisError) -> None:
        self._metrics.dedupe_store_errors.labels(operation).inc()
        if self._unavailable_until == 0.0:
            log.error(
                "dedupe store unavailable; failing open to JetStream's duplicate window",
                extra={"operation": operation, "error": type(exc).__name__},
            )
            self._metrics.dedupe_store_available.set(0)
        self._unavailable_until = time.monotonic() + self._cooldown_s

    def _recovered(self) -> None:
        if self._unavailable_until != 0.0:
            log.warning("dedupe store available again")
            self._metrics.dedupe_store_available.set(1)
            self._unavailable_until = 0.0
