"""Writes this process's view of its connectors into the shared status bucket.

Changes from the configuration watcher (loaded, disabled, cannot be built) are written in order as
they come. Every few seconds the reporter also publishes the last success of each connector served
here (from `Activity`, no I/O on the request path), adds the events accepted and requests refused
it counted to the per-minute rates in Valkey (hub/control/rates.py, one pipeline per flush; counts
that cannot be written are dropped: rates are a view, not a ledger) and, less often, a health
check: the connector is still loaded here, and for poll sources the state their runs left in Valkey
(`degraded` after repeated failures; `credential_expired` when the source answers 401 or 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

import nats.errors
from redis.exceptions import RedisError

from events.envelope import rfc3339
from hub.control.rates import Counts, RateStore
from hub.control.status import State, StatusChange, StatusStore
from hub.ingest.activity import Activity
from hub.poll.store import PollStore, SourceKey

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 2.0
HEALTH_INTERVAL_S = 15.0
CREDENTIAL_ERRORS = ("http 401", "http 403")

Key = tuple[str, str]


class StatusReporter:
    """Queues status changes and writes them; runs as a task until stopped."""

    def __init__(
        self,
        store: StatusStore,
        activity: Activity,
        served: Callable[[], Iterable[Key]],
        polled: Callable[[], Iterable[Key]],
        poll_store: PollStore | None,
        rates: RateStore | None = None,
    ) -> None:
        self._store = store
        self._rates = rates
        self._activity = activity
        self._served = served
        self._polled = polled
        self._poll_store = poll_store
        self._changes: asyncio.Queue[tuple[str, str, StatusChange]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def report(self, tenant: str, name: str, change: StatusChange) -> None:
        """Queue a change (callable from synchronous code on the loop)."""
        self._changes.put_nowait((tenant, name, change))

    def start(self) -> None:
        """Start writing."""
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="status reporter")

    async def stop(self) -> None:
        """Stop the loop, then write what is queued (bounded).

        The loop is cancelled and also told to stop: on Python 3.11 `asyncio.wait_for` (which
        nats-py's requests use) returns the result of a future that completed as its task was
        cancelled, so a cancellation can be lost, and the flag then ends the loop at its next turn.
        The caller's own cancellation is not swallowed here.
        """
        if self._task is None:
            return
        self._stopping = True
        self._task.cancel()
        await asyncio.wait({self._task})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FLUSH_INTERVAL_S):
                await self._drain()
                await self._flush_counts()

    async def _run(self) -> None:
        next_health = 0.0
        while not self._stopping:
            change = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_INTERVAL_S):
                    change = await self._changes.get()
            if change is not None:
                await self._write(*change)
            await self._drain()
            for (tenant, name), at in self._activity.take().items():
                await self._write(tenant, name, StatusChange(last_success_at=rfc3339(at)))
            await self._flush_counts()
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + HEALTH_INTERVAL_S
                await self._health_check()

    async def _flush_counts(self) -> None:
        counts = self._activity.take_counts()
        if self._rates is None or not counts:
            return
        try:
            await self._rates.add({key: Counts(*pair) for key, pair in counts.items()})
        except (RedisError, OSError) as exc:
            log.warning("rates not written", extra={"connectors": len(counts), "error": type(exc).__name__})

    async def _drain(self) -> None:
        while not self._changes.empty():
            await self._write(*self._changes.get_nowait())

    async def _health_check(self) -> None:
        polled = set(self._polled())
        for tenant, name in self._served():
            change = StatusChange(health_checked=True)
            if (tenant, name) in polled and self._poll_store is not None:
                change = await self._poll_health(tenant, name)
            await self._write(tenant, name, change)

    async def _poll_health(self, tenant: str, name: str) -> StatusChange:
        assert self._poll_store is not None
        try:
            fields = await self._poll_store.status(SourceKey(tenant, name))
        except RedisError:
            return StatusChange(health_checked=True)
        error = fields.get("lastError")
        polled_state = fields.get("state")
        state: State | None = polled_state if polled_state in ("active", "degraded", "error") else None  # type: ignore[assignment]
        if error in CREDENTIAL_ERRORS and polled_state != "active":
            state = "credential_expired"
        return StatusChange(
            state=state,
            last_success_at=fields.get("lastSuccessAt"),
            last_error=error,
            clear_error=not error,
            health_checked=True,
        )

    async def _write(self, tenant: str, name: str, change: StatusChange) -> None:
        try:
            await self._store.update(tenant, name, change)
        except (nats.errors.Error, TimeoutError) as exc:  # status is best effort; the next check rewrites it
            log.warning("status not written", extra={"connector": f"{tenant}/{name}", "error": type(exc).__name__})
