"""Per-connector counts over time: events accepted and requests refused, in Valkey per-minute buckets.

The ingress counts in memory on the request path (hub/ingest/activity.py, a dict increment); the
status reporter hands what accumulated to `RateStore.add` every few seconds, which writes it in one
pipeline: `HINCRBY` on `rates:{<tenant>}:<connector>:<minute>` (fields `accepted`, `refused`; the
minute is the Unix time // 60; also `unavailable`, the refusals answered 5xx, for the availability
SLO, and `failed`, the invocations of the connector's events the gate dead-lettered, for the error
rate SLO), each bucket expiring `BUCKET_TTL_S` after its last write. Every
process adds its own counts to the same buckets, so they sum over workers and instances.

The API others build on (the console's rates; per-connector SLOs, hub/control/slo.py):

    await rates.counts(keys, minutes=15)  -> {(tenant, connector): Counts(accepted, refused)}
    await rates.rates(keys)               -> {(tenant, connector): Rates(events_per_minute, rejection_rate)}
    await rates.history(keys, minutes=60) -> {(tenant, connector): [Counts, ...]}  (oldest minute first)

A window of N minutes is the current (partial) minute and the N - 1 before it; all keys and
minutes are read in one pipeline, so a caller reads only the connectors it shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

Key = tuple[str, str]
"""(tenant, connector)."""

BUCKET_TTL_S = 3_600
"""How long a minute's bucket lives after its last write: an hour of history, no more."""
MAX_WINDOW_MINUTES = 60
RATE_MINUTES = 5
"""Events per minute: accepted over the last 5 minutes / 5."""
REJECTION_MINUTES = 15
"""Rejection rate: refused / (accepted + refused) over the last 15 minutes."""
FIELDS = ("accepted", "refused", "unavailable", "failed")


@dataclass(frozen=True, slots=True)
class Counts:
    """Events accepted and requests refused (`unavailable`: of those, the ones answered 5xx), and the
    invocations of its events that failed to dispatch (dead-lettered)."""

    accepted: int = 0
    refused: int = 0
    unavailable: int = 0
    failed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.accepted + other.accepted,
            self.refused + other.refused,
            self.unavailable + other.unavailable,
            self.failed + other.failed,
        )

    @property
    def empty(self) -> bool:
        return not (self.accepted or self.refused or self.unavailable or self.failed)


@dataclass(frozen=True, slots=True)
class Rates:
    """What the connectors page shows: events per minute, and the share of requests refused (None:
    nothing came in the window, shown as n/a)."""

    events_per_minute: float
    rejection_rate: float | None


def bucket_key(tenant: str, connector: str, minute: int) -> str:
    """A minute's bucket; the braces make a tenant's buckets one hash slot on a cluster."""
    return f"rates:{{{tenant}}}:{connector}:{minute}"


def minute_of(at: float) -> int:
    return int(at // 60)


class RateStore:
    """Per-minute counts of connectors in Valkey."""

    def __init__(self, redis: Redis, *, ttl_s: int = BUCKET_TTL_S) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def add(self, counts: Mapping[Key, Counts], at: float | None = None) -> None:
        """Add counts to the minute `at` falls in (now by default): one pipeline whatever their number."""
        minute = minute_of(time.time() if at is None else at)
        pipe = self._redis.pipeline(transaction=False)
        written = False
        for (tenant, connector), count in counts.items():
            if count.empty:
                continue
            key = bucket_key(tenant, connector, minute)
            values = (count.accepted, count.refused, count.unavailable, count.failed)
            for field, value in zip(FIELDS, values, strict=True):
                if value:
                    pipe.hincrby(key, field, value)
            pipe.expire(key, self._ttl_s)
            written = True
        if written:
            await pipe.execute()

    async def counts(self, keys: Sequence[Key], minutes: int, now: float | None = None) -> dict[Key, Counts]:
        """Each connector's counts summed over the last `minutes` minutes (1-60): one pipeline."""
        if not 1 <= minutes <= MAX_WINDOW_MINUTES:
            raise ValueError(f"minutes must be 1-{MAX_WINDOW_MINUTES}")
        per_minute = await self._per_minute(keys, minutes, now)
        return {key: sum(buckets, Counts()) for key, buckets in per_minute.items()}

    async def history(self, keys: Sequence[Key], minutes: int, now: float | None = None) -> dict[Key, list[Counts]]:
        """Each connector's per-minute counts over the last `minutes` minutes (1-60), oldest first: one pipeline."""
        if not 1 <= minutes <= MAX_WINDOW_MINUTES:
            raise ValueError(f"minutes must be 1-{MAX_WINDOW_MINUTES}")
        return await self._per_minute(keys, minutes, now)

    async def rates(self, keys: Sequence[Key], now: float | None = None) -> dict[Key, Rates]:
        """Each connector's events per minute (last RATE_MINUTES) and rejection rate (last
        REJECTION_MINUTES), from one pipeline."""
        per_minute = await self._per_minute(keys, REJECTION_MINUTES, now)
        answer = {}
        for key, buckets in per_minute.items():
            recent = sum(buckets[-RATE_MINUTES:], Counts())
            window = sum(buckets, Counts())
            total = window.accepted + window.refused
            answer[key] = Rates(recent.accepted / RATE_MINUTES, window.refused / total if total else None)
        return answer

    async def _per_minute(self, keys: Sequence[Key], minutes: int, now: float | None) -> dict[Key, list[Counts]]:
        """Each key's buckets, oldest minute first."""
        if not keys:
            return {}
        last = minute_of(time.time() if now is None else now)
        window = range(last - minutes + 1, last + 1)
        pipe = self._redis.pipeline(transaction=False)
        for tenant, connector in keys:
            for minute in window:
                pipe.hmget(bucket_key(tenant, connector, minute), list(FIELDS))
        replies: Iterator[list[bytes | None]] = iter(await pipe.execute())
        return {key: [Counts(*(int(v or 0) for v in next(replies))) for _ in window] for key in keys}
