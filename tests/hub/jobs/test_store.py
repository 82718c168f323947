"""Job records on a real nats-server: one claim wins, a runner that lost its job learns it at its next
write, and a process with the admin role runs jobs (its runner is started by `start_process`)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path

import nats
import pytest

from hub.app.config import load_configuration
from hub.app.connections import Endpoints
from hub.app.embedded import RunningServer
from hub.app.roles import start_process
from hub.jobs import replay
from hub.jobs.selection import Selection
from hub.jobs.store import JobStore, LostJob, claim
from hub.settings import Settings
from tests.hub.gate.harness import envelope, publish_event, until
from tests.hub.jobs.fixtures import job_ended

pytestmark = pytest.mark.integration


async def test_one_claim_wins_and_an_owner_whose_lease_was_taken_over_stops(nats_server: RunningServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        store = await JobStore.open(nc.jetstream())
        job = await store.create("replay", None, {})
        stored = await store.get(job.id)
        assert stored is not None
        first = await claim(store, stored, "one", lease_s=0.05)
        assert first is not None
        assert first.job.state == "running"
        assert await claim(store, stored, "two", lease_s=30) is None  # the revision moved on
        expired = await store.get(job.id)
        assert expired is not None
        lease_until = expired.job.lease_until
        await until(lambda: time.time() > lease_until, 5, "the first lease to expire")
        second = await claim(store, expired, "two", lease_s=30)
        assert second is not None
        assert second.job.owner == "two"
        with pytest.raises(LostJob):
            await first.write(lambda j: replace(j, checkpoint={"next": 99}))
        current = await store.get(job.id)
        assert current is not None
        assert current.job.checkpoint == {}
        assert current.job.owner == "two"
        canceled = await store.request_cancel(job.id)
        assert canceled is not None
        assert canceled.cancel_requested
        assert canceled.state == "running"
        renewed = await second.renew()  # the owner's next write keeps the request
        assert renewed.cancel_requested
        assert await store.get("../etc") is None
    finally:
        await nc.close()


async def test_a_process_with_the_admin_role_runs_jobs(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path
) -> None:
    settings = Settings(nats_url=nats_server.url, redis_url=valkey_server.url, data_dir=tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        process = await start_process(
            stack,
            settings,
            load_configuration(settings, roles=("admin",)),
            Endpoints(nats_server.url, valkey_server.url, {}),
            ("admin",),
        )
        js = process.conn.nc.jetstream()
        await publish_event(js, envelope("acme", "gh", "github.push"))
        store = await JobStore.open(js)
        job = await replay.start(store, replay.ReplayRequest(Selection(tenant="acme"), "subject"), created_by="t")
        ended = await job_ended(store, job.id)
        assert (ended.state, ended.progress.done) == ("succeeded", 1)
