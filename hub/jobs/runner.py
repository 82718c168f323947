"""The job runner: in every process with the admin role, it claims a pending job (or a running one
whose lease expired), runs it step by step and writes progress and checkpoint after each step.

While a job runs, its lease is renewed (after each step, and by a heartbeat every third of the lease
for a slow step). A runner that dies leaves its lease to expire; the next runner resumes after the
last checkpoint written and sends the unfinished batch again under the same message ids, which
JetStream's duplicate window drops. A cancel request is honoured between steps. A runner that stops
cleanly hands its job back at once (lease 0) after the step under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace

import nats.errors
from nats.aio.client import Client as NATS

from events.directget import HistoryUnavailable
from events.subjects import HUB_WIDE
from hub.control.audit import AuditLog
from hub.gate.catalog import GateCatalog
from hub.gate.policy_consumer import PublishFailed
from hub.jobs.kind import BATCH_SIZE, JobContext, JobKind, JobServices, Step
from hub.jobs.pacing import TokenBucket
from hub.jobs.registry import KINDS
from hub.jobs.store import Claim, Job, JobStore, LostJob, Progress, State, claim
from hub.runtime.live import Live
from hub.runtime.waiting import wait_set
from hub.settings import Settings

log = logging.getLogger(__name__)

LEASE_S = 30.0
POLL_S = 1.0
STEP_ATTEMPTS = 3
"""A step that fails on the bus is tried again (same checkpoint, same message ids) before the job fails."""
RETRYABLE = (nats.errors.Error, TimeoutError, PublishFailed, HistoryUnavailable)


def instance_name() -> str:
    """This runner's name in the jobs it owns."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobRunner:
    """Claims and runs jobs one at a time."""

    def __init__(
        self,
        nc: NATS,
        store: JobStore,
        catalog: Live[GateCatalog],
        *,
        rate: float,
        audit: AuditLog | None = None,
        lease_s: float = LEASE_S,
        poll_s: float = POLL_S,
        batch_size: int = BATCH_SIZE,
        kinds: Mapping[str, JobKind] = KINDS,
        services: JobServices | None = None,
    ) -> None:
        self.owner = instance_name()
        self._store = store
        self._audit = audit
        self._lease_s = lease_s
        self._poll_s = poll_s
        self._kinds = kinds
        self._context = JobContext(nc, catalog, TokenBucket(rate), batch_size=batch_size, services=services)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Finish the step under way, hand the job back and return from `run`."""
        self._stop.set()

    async def run(self) -> None:
        """Run jobs until stopped."""
        while not self._stop.is_set():
            try:
                ran = await self.run_once()
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("job runner cannot reach the bus", extra={"error": type(exc).__name__})
                ran = False
            if not ran:
                await wait_set(self._stop, self._poll_s)

    async def run_once(self) -> bool:
        """Claim one job and run it to its end (or until stopped); False when there was none."""
        now = time.time()
        for stored in sorted(await self._store.all(), key=lambda s: s.job.created_at):
            if not stored.job.claimable(now):
                continue
            claimed = await claim(self._store, stored, self.owner, self._lease_s)
            if claimed is None:
                continue
            log.info("job claimed", extra={"job": stored.job.id, "kind": stored.job.kind})
            with contextlib.suppress(LostJob):
                await self._execute(claimed)
            return True
        return False

    async def _execute(self, claimed: Claim) -> None:
        kind = self._kinds.get(claimed.job.kind)
        if kind is None:
            await self._finish(claimed, "failed", error=f"unknown job kind {claimed.job.kind}")
            return
        heartbeat = asyncio.create_task(self._heartbeat(claimed))
        try:
            while True:
                job = claimed.job
                if job.cancel_requested:
                    await self._finish(claimed, "canceled")
                    return
                if self._stop.is_set():
                    await claimed.write(lambda j: j, lease_s=0)
                    return
                try:
                    step = await self._step(kind, job)
                except Exception as exc:  # the job fails, saying why; the runner goes on with others
                    log.exception("job failed", extra={"job": job.id})
                    await self._finish(claimed, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
                    return
                await claimed.write(functools.partial(_advanced, step=step))
                if step.finished:
                    await self._finish(claimed, "succeeded", result=step.result)
                    return
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, LostJob):
                await heartbeat

    async def _step(self, kind: JobKind, job: Job) -> Step:
        for attempt in range(1, STEP_ATTEMPTS + 1):
            try:
                return await kind.step(job, self._context)
            except RETRYABLE as exc:
                if attempt == STEP_ATTEMPTS:
                    raise
                log.warning("job step failed; trying again", extra={"job": job.id, "error": type(exc).__name__})
                await asyncio.sleep(0.5 * attempt)
        raise AssertionError("unreachable")

    async def _heartbeat(self, claimed: Claim) -> None:
        while True:
            await asyncio.sleep(self._lease_s / 3)
            await claimed.renew()

    async def _finish(
        self, claimed: Claim, state: State, *, result: dict[str, object] | None = None, error: str | None = None
    ) -> None:
        job = await claimed.write(
            lambda j: replace(j, state=state, finished_at=time.time(), result=result, error=error), lease_s=0
        )
        log.info("job ended", extra={"job": job.id, "state": state})
        if self._audit is not None:
            await self._audit.record(
                tenant=job.tenant or HUB_WIDE,
                action=f"job_{state}",
                target=f"job/{job.id}",
                outcome=state,
                request_id=None,
                key_id=job.created_by,
                started=time.perf_counter(),
                detail={"kind": job.kind, "done": job.progress.done, "failed": job.progress.failed},
            )


def _advanced(job: Job, step: Step) -> Job:
    progress = Progress(
        job.progress.done + step.done,
        job.progress.failed + step.failed,
        step.total if step.total is not None else job.progress.total,
    )
    return replace(job, checkpoint=step.checkpoint, progress=progress)


@contextlib.asynccontextmanager
async def job_runner(
    settings: Settings, nc: NATS, catalog: Live[GateCatalog], services: JobServices | None = None
) -> AsyncIterator[JobRunner]:
    """The runner of a process with the admin role, paced by `HUB_REPLAY_RATE`; on exit it finishes
    its step and hands its job back (a failing process just stops: the lease expires)."""
    js = nc.jetstream()
    store = await JobStore.open(js, replicas=settings.stream_replicas)
    runner = JobRunner(nc, store, catalog, rate=settings.replay_rate, audit=AuditLog(js), services=services)
    task = asyncio.create_task(runner.run(), name="job runner")
    try:
        yield runner
    except BaseException:
        runner.stop()  # the loop ends at its next turn even if a library swallows the cancellation
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise
    runner.stop()
    await task
