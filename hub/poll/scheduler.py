"""The poll scheduler (role `poller`): every source on its schedule, one run at a time cluster-wide.

Each source has a loop in every hub process. A run needs the source's lease in Valkey (an owner
token, renewed while the run lasts, released at its end, expiring if its holder dies), and starts
only if the shared next-run time has come, so several processes neither overlap nor run one
schedule slot twice. After a run the holder sets the next-run time: the schedule after a success,
a backoff after a failure (at least the source's `Retry-After`), the cooldown once the failures in
a row reach the circuit threshold (`degraded`). Status goes to Valkey for `connector-hub status`.

The set of sources may change while the scheduler runs (`replace_sources`): loops of removed or
changed sources are retired the way `stop()` ends them, after their current page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from croniter import croniter
from redis.exceptions import RedisError

from adapters.pollers.base import SourceError, SourceUnavailable
from events.envelope import rfc3339
from hub.errors import BodyTooLarge, ClaimHeld, PublishUnavailable
from hub.ingest.ingestor import Ingestor
from hub.poll.client import GuardedClient
from hub.poll.egress import EgressPolicy
from hub.poll.metrics import PollMetrics
from hub.poll.run import RunProgress, run_source
from hub.poll.sources import PollSource
from hub.poll.store import PollStore, SourceKey
from hub.runtime.backoff import backoff_delay
from hub.runtime.waiting import wait_set

log = logging.getLogger(__name__)

STORE_RETRY_S = 2.0
"""How long a source's loop waits after Valkey failed it (no lease means no run)."""
CLAIM_RETRY_MIN_S = 1.0
"""The shortest wait before a run retries items another run still claims."""


def recovery_bound_note(lease_ttl_s: float, claim_ttl_s: float) -> str | None:
    """What a start-up should say when the dedupe claim TTL outlasts the poll lease TTL, else None.

    After a crash, another instance takes a source over when the dead run's lease expires, and items
    that run had claimed but not stored wait for their claims to expire: every item arrives within the
    lease TTL plus the claim TTL. A claim TTL longer than the lease makes the claims, not the lease,
    decide how long a source waits after a crash.
    """
    if claim_ttl_s <= lease_ttl_s:
        return None
    return (
        f"HUB_CLAIM_TTL ({claim_ttl_s:g}s) is longer than HUB_POLL_LEASE_TTL ({lease_ttl_s:g}s): after a crash, "
        f"a poll source's unstored items wait up to {lease_ttl_s + claim_ttl_s:g}s (lease plus claim TTL) instead "
        f"of {lease_ttl_s:g}s; set HUB_CLAIM_TTL at most HUB_POLL_LEASE_TTL for the shorter bound"
    )


@dataclass(slots=True)
class _Loop:
    """The loop of one source; `stop` is set when the scheduler stops or the source is retired."""

    source: PollSource
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class PollScheduler:
    """Runs every poll source of this process until stopped."""

    def __init__(
        self,
        sources: Sequence[PollSource],
        store: PollStore,
        ingestor: Ingestor,
        metrics: PollMetrics,
        *,
        lease_ttl_s: float = 30.0,
    ) -> None:
        self._store = store
        self._ingestor = ingestor
        self._metrics = metrics
        self._lease_ttl_s = lease_ttl_s
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._stopping = asyncio.Event()
        self._wanted: dict[SourceKey, PollSource] = {}
        self._loops: dict[SourceKey, _Loop] = {}
        self._group: asyncio.TaskGroup | None = None
        """Where loops start; set only while `run()` is running and not stopping."""
        self.replace_sources(sources)

    @property
    def active_keys(self) -> frozenset[SourceKey]:
        """The sources that have a loop, including retired loops still finishing their page."""
        return frozenset(self._loops)

    async def run(self) -> None:
        """One loop per source until `stop()` (even with no sources, which may come later); returns
        once every loop has ended."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                self._start_missing()
                await self._stopping.wait()
            finally:
                self._group = None  # stopped or cancelled: no loop starts while the group winds down

    def stop(self) -> None:
        """Ask every loop to finish: a run stops after its current page."""
        self._stopping.set()
        for loop in self._loops.values():
            loop.stop.set()

    def replace_sources(self, sources: Sequence[PollSource]) -> None:
        """Poll exactly `sources` from now on (before or while `run()` runs, on its event loop).

        A source with a new key gets a loop. The loop of a source whose key is gone, or whose
        source changed, is retired as `stop()` ends loops: a run stops after its current page and
        releases the lease. A changed source's new loop starts only once the old one has ended,
        since both would hold the lease under this process's one owner token.

        Sources compare with `==`, which compares pollers by identity: a source rebuilt from an
        unchanged spec counts as changed and its loop restarts (after its page, at the stored
        next-run time). Pass the same object again to leave a loop alone.
        """
        wanted = {source.key: source for source in sources}
        if len(wanted) != len(sources):
            raise ValueError("poll sources with the same key")
        self._wanted = wanted
        for key, loop in self._loops.items():
            if wanted.get(key) != loop.source:
                loop.stop.set()
        self._start_missing()

    def _start_missing(self) -> None:
        """Start a loop for every wanted source without one."""
        if self._group is None or self._stopping.is_set():
            return
        for key, source in self._wanted.items():
            if key not in self._loops:
                loop = _Loop(source)
                self._loops[key] = loop
                self._group.create_task(self._loop(loop), name=f"poll {source.label}")

    async def _loop(self, loop: _Loop) -> None:
        """Poll one source until its loop is stopped, then make way for the source's next loop."""
        try:
            await self._poll(loop.source, loop.stop)
        except Exception:  # closing the client failed: this loop is over anyway, the others go on
            log.exception("poll loop failed while ending", extra={"source": loop.source.label})
        finally:
            del self._loops[loop.source.key]
            self._start_missing()

    async def _poll(self, source: PollSource, stop: asyncio.Event) -> None:
        client: GuardedClient | None = None
        try:
            while not stop.is_set():
                try:
                    if client is None:  # in here: a spec the client refuses fails this source only
                        client = GuardedClient(
                            EgressPolicy(source.settings.egress, source.settings.request.url),
                            timeout_s=source.settings.timeout.total_seconds(),
                            auth_headers=source.auth_headers,
                        )
                    wait_s = await self._seconds_until_due(source)
                    if wait_s <= 0 and await self._store.acquire(source.key, self._owner, self._lease_ttl_s):
                        try:
                            # Not retired meanwhile, and nobody ran it meanwhile.
                            if not stop.is_set() and await self._seconds_until_due(source) <= 0:
                                await self._run(source, client, stop)
                        finally:
                            await self._store.release(source.key, self._owner)
                        continue
                except RedisError as exc:
                    log.warning("poll store unavailable", extra={"source": source.label, "error": type(exc).__name__})
                    wait_s = STORE_RETRY_S
                except Exception:  # keep this source's loop (and the others) alive whatever happened
                    log.exception("poll loop failed; retrying", extra={"source": source.label})
                    wait_s = STORE_RETRY_S
                await _sleep(stop, max(min(wait_s, self._lease_ttl_s / 3), 0.05))
        finally:
            if client is not None:
                await client.close()

    async def _seconds_until_due(self, source: PollSource) -> float:
        due = await self._store.next_run_at(source.key)
        return 0.0 if due is None else due - time.time()

    async def _run(self, source: PollSource, client: GuardedClient, stop: asyncio.Event) -> None:
        started = time.time()
        labels = (source.tenant, source.name)
        lost = asyncio.Event()
        progress = RunProgress()
        await self._store.update_status(source.key, {"lastRunAt": rfc3339(started)})

        def keep_going() -> bool:
            return not (lost.is_set() or stop.is_set())

        run = asyncio.create_task(run_source(source, client, self._store, self._ingestor, keep_going, progress))
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=self._lease_ttl_s / 3)
                if not run.done() and not await self._store.renew(source.key, self._owner, self._lease_ttl_s):
                    lost.set()
                    log.warning("poll lease lost during a run; stopping it", extra={"source": source.label})
                    run.cancel()
        finally:
            if not run.done():  # this loop itself was cancelled (the hub is stopping hard)
                run.cancel()
        self._metrics.run_duration.labels(*labels).observe(time.time() - started)
        await self._count(source, progress)
        error: SourceError | None = None
        try:
            run.result()
        except asyncio.CancelledError:
            self._metrics.runs.labels(*labels, "lease_lost").inc()
            return
        except ClaimHeld as exc:
            await self._claims_held(source, exc)
            return
        except (SourceError, PublishUnavailable, BodyTooLarge, RedisError) as exc:
            error = _as_source_error(exc)
        except Exception as exc:  # a bug must fail this source's run, not every source's loop
            log.exception("poll run raised", extra={"source": source.label})
            error = SourceError(f"internal error: {type(exc).__name__}")
        if error is not None:
            await self._failed(source, error)
        elif progress.interrupted:  # stopping or lease lost: what was saved stands, the run is still due
            self._metrics.runs.labels(*labels, "interrupted").inc()
        else:
            await self._succeeded(source, started, progress)

    async def _count(self, source: PollSource, progress: RunProgress) -> None:
        """Items published and skipped by this run, however it ended."""
        labels = (source.tenant, source.name)
        self._metrics.items_published.labels(*labels).inc(progress.published)
        self._metrics.duplicates.labels(*labels).inc(progress.duplicates)
        if progress.newest_item_time is not None:
            self._metrics.lag.labels(*labels).set(max(time.time() - progress.newest_item_time, 0))

    async def _succeeded(self, source: PollSource, started: float, progress: RunProgress) -> None:
        labels = (source.tenant, source.name)
        outcome = "not_modified" if progress.not_modified else "ok"
        self._metrics.runs.labels(*labels, outcome).inc()
        self._metrics.consecutive_failures.labels(*labels).set(0)
        self._metrics.backoff.labels(*labels).set(0)
        next_at = next_scheduled(source, started)
        await self._store.set_next_run_at(source.key, next_at)
        status = {
            "state": "active",
            "lastSuccessAt": rfc3339(time.time()),
            "lastError": None,
            "failures": 0,
            "nextRunAt": rfc3339(next_at),
            "cursor": progress.cursor,
        }
        await self._store.update_status(source.key, status)
        log.info(
            "poll run done",
            extra={
                "source": source.label,
                "pages": progress.pages,
                "published": progress.published,
                "outcome": outcome,
            },
        )

    async def _claims_held(self, source: PollSource, held: ClaimHeld) -> None:
        """Items of the page are claimed by another run: one that died mid-page (its claims outlive it
        by the claim TTL) or, briefly, one still publishing. That says nothing about the source, so
        it is no failure: the source keeps its state and backoff, and the run is retried shortly;
        once the claims expire the items are published by the retried run."""
        next_at = time.time() + max(float(held.retry_after_s), CLAIM_RETRY_MIN_S)
        await self._store.set_next_run_at(source.key, next_at)
        await self._store.update_status(source.key, {"nextRunAt": rfc3339(next_at)})
        self._metrics.runs.labels(source.tenant, source.name, "claims_held").inc()
        log.info(
            "poll run waits for items another run claimed",
            extra={"source": source.label, "retry_in_s": round(next_at - time.time(), 3)},
        )

    async def _failed(self, source: PollSource, error: SourceError) -> None:
        labels = (source.tenant, source.name)
        failures = int((await self._store.status(source.key)).get("failures", "0")) + 1
        backoff = source.settings.backoff
        delay_s = backoff_delay(failures, backoff.initial.total_seconds(), backoff.max.total_seconds())
        if error.retry_after_s is not None:
            delay_s = max(delay_s, error.retry_after_s)
        state = "active" if error.transient else "error"
        if failures >= source.settings.circuit.failureThreshold:
            state = "degraded" if error.transient else "error"
            delay_s = max(delay_s, source.settings.circuit.cooldown.total_seconds())
        next_at = time.time() + delay_s
        await self._store.set_next_run_at(source.key, next_at)
        status = {"state": state, "lastError": error.reason, "failures": failures, "nextRunAt": rfc3339(next_at)}
        await self._store.update_status(source.key, status)
        self._metrics.runs.labels(*labels, "failed").inc()
        self._metrics.consecutive_failures.labels(*labels).set(failures)
        self._metrics.backoff.labels(*labels).set(delay_s)
        log.warning(
            "poll run failed",
            extra={
                "source": source.label,
                "error": error.reason,
                "failures": failures,
                "state": state,
                "retry_in_s": round(delay_s, 3),
            },
        )


def next_scheduled(source: PollSource, started: float) -> float:
    """When the next run is due after a successful run that started at `started`."""
    settings = source.settings
    jitter = random.uniform(0, settings.jitter.total_seconds())  # noqa: S311 - spreading load, not security
    if settings.interval is not None:
        return started + settings.interval.total_seconds() + jitter
    assert settings.cron is not None
    after = datetime.fromtimestamp(max(started, time.time()), UTC)
    return float(croniter(settings.cron, after).get_next(float)) + jitter


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if the loop is stopped meanwhile."""
    await wait_set(stop, seconds)


def _as_source_error(exc: Exception) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, PublishUnavailable):
        return SourceUnavailable("the event bus did not confirm the publish")
    if isinstance(exc, BodyTooLarge):
        return SourceError("an item is larger than the event bus accepts (max_payload)")
    return SourceUnavailable(f"poll store error: {type(exc).__name__}")
