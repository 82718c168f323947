"""Job runners on a real nats-server: started as tasks, stopped (or killed, as a crash) by the test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from hub.gate.catalog import GateCatalog, build_catalog
from hub.jobs.runner import JobRunner
from hub.jobs.store import Job, JobStore
from hub.runtime.live import Live
from schemas.loader import load_specs
from tests.hub.gate.harness import until


def catalog_of_specs(specs: Path) -> Live[GateCatalog]:
    """The catalog the gate builds from a specs file."""
    return Live(build_catalog(load_specs(specs)))


@dataclass
class RunningRunner:
    """A runner task on its own connection."""

    runner: JobRunner
    task: asyncio.Task[None]
    nc: NATS

    async def kill(self) -> None:
        """Die as a crashed process does: no more writes, the lease left to expire."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.nc.close()


@contextlib.asynccontextmanager
async def runner(
    nats_url: str,
    catalog: Live[GateCatalog],
    *,
    rate: float = 10_000.0,
    lease_s: float = 30.0,
    batch_size: int = 256,
) -> AsyncIterator[RunningRunner]:
    """A JobRunner polling every 50 ms, on its own NATS connection, until the block ends."""
    nc = await nats.connect(nats_url)
    store = await JobStore.open(nc.jetstream())
    job_runner = JobRunner(nc, store, catalog, rate=rate, lease_s=lease_s, poll_s=0.05, batch_size=batch_size)
    running = RunningRunner(job_runner, asyncio.create_task(job_runner.run()), nc)
    try:
        yield running
    finally:
        if not running.task.done():
            job_runner.stop()
            await asyncio.wait_for(running.task, 10)
        if not nc.is_closed:
            await nc.close()


async def job_ended(store: JobStore, job_id: str, timeout: float = 20.0) -> Job:  # noqa: ASYNC109
    """The job once it is finished."""
    found: list[Job] = []

    async def ended() -> bool:
        stored = await store.get(job_id)
        if stored is not None and stored.job.finished:
            found.append(stored.job)
            return True
        return False

    await until(ended, timeout, f"job {job_id} to end")
    return found[-1]
