"""Writes this process's view of its connectors into the shared status bucket.

Changes from the configuration watcher (loaded, disabled, cannot be built) are written in order as
they come. Every few seconds the reporter also publishes the last success of each connector served
here (from `Activity`, no I/O on the request path), adds the events accepted and requests refused
it counted to the per-minute rates in Valkey (hub/control/rates.py, one pipeline per flush; counts
that cannot be written are dropped: rates are a view, not a ledger) and, less often, a health
check: the connector is still loaded here, and for poll sources the state their runs left in Valkey
(`degraded` after repeated failures; `credential_expired` when the source answers 401 or 403).
Each health check also carries an observation of the connector (its last hour of per-minute counts,
read for every connector served here in one pipeline): the status merge evaluates the connector's
SLOs from it and advances its certification (hub/control/certification.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import nats.errors
from redis.exceptions import RedisError

from events.envelope import rfc3339
from hub.control.certification import Observation
from hub.control.rates import Counts, RateStore
from hub.control.slo import HISTORY_MINUTES, counted_minutes
from hub.control.status import ConnectorStatus, State, StatusChange, StatusStore
from hub.ingest.activity import Activity
from hub.poll.store import PollStore, SourceKey

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 2.0
HEALTH_INTERVAL_S = 15.0
DEFAULT_CERTIFICATION_PERIOD_S = 24 * 3600.0
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
        *,
        certification_period_s: float = DEFAULT_CERTIFICATION_PERIOD_S,
        health_interval_s: float = HEALTH_INTERVAL_S,
    ) -> None:
        self._store = store
        self._certification_period_s = certification_period_s
        self._health_interval_s = health_interval_s
        self._rates = rates
        self._activity = activity
        self._served = served
        self._polled = polled
        self._poll_store = poll_store
        self._changes: asyncio.Queue[tuple[str, str, StatusChange]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._minutes: dict[Key, int] = {}
        """The minutes of counts each connector's objectives need, learnt from its status as last
        written (unknown yet: HISTORY_MINUTES; 0: it sets no objective on counts)."""
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
                async with asyncio.timeout(min(FLUSH_INTERVAL_S, self._health_interval_s)):
                    change = await self._changes.get()
            if change is not None:
                await self._write(*change)
            await self._drain()
            for (tenant, name), at in self._activity.take().items():
                await self._write(tenant, name, StatusChange(last_success_at=rfc3339(at)))
            await self._flush_counts()
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + self._health_interval_s
                await self._health_check()

    async def _flush_counts(self) -> None:
        counts = self._activity.take_counts()
        if self._rates is None or not counts:
            return
        try:
            await self._rates.add({key: Counts(*values) for key, values in counts.items()})
        except (RedisError, OSError) as exc:
            log.warning("rates not written", extra={"connectors": len(counts), "error": type(exc).__name__})

    async def _drain(self) -> None:
        while not self._changes.empty():
            await self._write(*self._changes.get_nowait())

    async def _health_check(self) -> None:
        polled = set(self._polled())
        served = list(self._served())
        history = await self._history(served)
        for tenant, name in served:
            change = StatusChange(health_checked=True)
            if (tenant, name) in polled and self._poll_store is not None:
                change = await self._poll_health(tenant, name)
            observation = Observation(tuple(history.get((tenant, name), ())), self._certification_period_s)
            status = await self._write(tenant, name, replace(change, observation=observation))
            if status is not None:
                self._minutes[(tenant, name)] = counted_minutes(status.slo)

    async def _history(self, keys: list[Key]) -> dict[Key, list[Counts]]:
        """The per-minute counts of the served connectors whose objectives need them, as many minutes
        as the longest window among them; none when Valkey does not answer (the SLOs on counts then
        have no value this round, and breach nothing)."""
        wanted = [key for key in keys if self._minutes.get(key, HISTORY_MINUTES)]
        if self._rates is None or not wanted:
            return {}
        try:
            return await self._rates.history(wanted, max(self._minutes.get(k, HISTORY_MINUTES) for k in wanted))
        except (RedisError, OSError) as exc:
            log.warning("rates not read", extra={"connectors": len(wanted), "error": type(exc).__name__})
            return {}

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

    async def _write(self, tenant: str, name: str, change: StatusChange) -> ConnectorStatus | None:
        try:
            return await self._store.update(tenant, name, change)
        except (nats.errors.Error, TimeoutError) as exc:  # status is best effort; the next check rewrites it
            log.warning("status not written", extra={"connector": f"{tenant}/{name}", "error": type(exc).__name__})
            return None
