"""What the poll scheduler keeps in Valkey, shared by every hub process.

Per source (`poll:{tenant}:{connector}:...`): the lease (one run at a time, cluster-wide), the
state a run resumes from (cursor, ETag, Last-Modified), when the next run is due (so that two
instances do not both run one schedule slot), and the status operators read.

Unlike the dedupe store, this one never fails open: without Valkey there is no lease, so no run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from adapters.pollers.base import PollState

# Renew or release the lease only if it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

STATES = ("active", "degraded", "error", "disabled")

_Field = bytes | bytearray | memoryview | str | int | float
"""What redis-py's `hset` takes as a field name or value."""


@dataclass(frozen=True, slots=True)
class SourceKey:
    """A poll source's identity."""

    tenant: str
    connector: str

    def key(self, part: str) -> str:
        """`poll:{tenant}:{connector}:{part}`."""
        return f"poll:{self.tenant}:{self.connector}:{part}"

    @property
    def label(self) -> str:
        """`tenant/connector`."""
        return f"{self.tenant}/{self.connector}"


class PollStore:
    """Leases, resume state, next-run times and status of poll sources."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, source: SourceKey, owner: str, ttl_s: float) -> bool:
        """Take the lease for `ttl_s` if nobody holds it."""
        return bool(await self._redis.set(source.key("lease"), owner, nx=True, px=_ms(ttl_s)))

    async def renew(self, source: SourceKey, owner: str, ttl_s: float) -> bool:
        """Extend our lease; False when it is no longer ours (it expired and someone took it)."""
        return bool(await self._renew(keys=[source.key("lease")], args=[owner, _ms(ttl_s)]))

    async def release(self, source: SourceKey, owner: str) -> None:
        """Give the lease back, only if it is still ours."""
        await self._release(keys=[source.key("lease")], args=[owner])

    async def load_state(self, source: SourceKey, initial_cursor: str | None) -> PollState:
        """The state a run resumes from (the initial cursor before the first run)."""
        raw = await self._redis.hgetall(source.key("state"))
        if not raw:
            return PollState(cursor=initial_cursor)
        fields = _text(raw)
        return PollState(
            cursor=fields.get("cursor", initial_cursor),
            etag=fields.get("etag"),
            last_modified=fields.get("last_modified"),
        )

    async def save_state(self, source: SourceKey, state: PollState) -> None:
        """Store the state a page ended with (after its events were acknowledged)."""
        values = {"cursor": state.cursor, "etag": state.etag, "last_modified": state.last_modified}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(source.key("state"))
            present: dict[_Field, _Field] = {k: v for k, v in values.items() if v is not None}
            if present:
                pipe.hset(source.key("state"), mapping=present)
            await pipe.execute()

    async def next_run_at(self, source: SourceKey) -> float | None:
        """When the next run is due (epoch seconds), as the last run set it; None before any run."""
        value = await self._redis.get(source.key("next"))
        return float(value) if value is not None else None

    async def set_next_run_at(self, source: SourceKey, at: float) -> None:
        await self._redis.set(source.key("next"), repr(at))

    async def update_status(self, source: SourceKey, fields: Mapping[str, Any], *, published: int = 0) -> None:
        """Merge fields into the status (None removes a field) and add to the published count."""
        key = source.key("status")
        async with self._redis.pipeline(transaction=True) as pipe:
            present: dict[_Field, _Field] = {k: str(v) for k, v in fields.items() if v is not None}
            if present:
                pipe.hset(key, mapping=present)
            absent = [k for k, v in fields.items() if v is None]
            if absent:
                pipe.hdel(key, *absent)
            if published:
                pipe.hincrby(key, "itemsPublished", published)
            await pipe.execute()

    async def status(self, source: SourceKey) -> dict[str, str]:
        """The stored status of one source (empty if it never ran)."""
        return _text(await self._redis.hgetall(source.key("status")))


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A hash from a client that does not decode responses, as text."""
    return {_decoded(k): _decoded(v) for k, v in raw.items()}


def _decoded(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
