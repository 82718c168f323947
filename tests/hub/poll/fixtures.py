"""Fixtures for the poll tests: the poll scheduler running in-process against real servers, started
by the role context managers `connector-hub run --role poller` uses, on the sources the KV watcher
builds; and loopback sources the specs explicitly allow."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from hub.app.config import load_configuration
from hub.app.connections import Endpoints, connected
from hub.app.embedded import RunningServer
from hub.app.metrics import HubMetrics
from hub.app.roles import Polling, build_context, control_plane, ingest_path, polling, watching
from hub.control.watcher import LiveConfiguration
from hub.ingest.context import HubContext
from hub.ingest.ingestor import Ingestor
from hub.poll.store import PollStore, SourceKey
from hub.settings import Settings
from tests.hub.gate.harness import stream_messages

EVENTS = "HUB_EVENTS"
POLLER = ("poller",)


@dataclass
class PollerUnderTest:
    """An in-process poll scheduler with its connections."""

    nc: NATS
    js: JetStreamContext
    redis: Redis
    polling: Polling
    metrics: HubMetrics
    store: PollStore
    context: HubContext | None = None
    """The process's context (the ingestor the scheduler publishes through), e.g. to serve `build_app` on it."""

    async def events(self) -> list[dict[str, Any]]:
        """Every envelope in HUB_EVENTS, in order."""
        return [orjson.loads(m.data or b"") for m in await stream_messages(self.js, EVENTS)]

    async def status(self, tenant: str, connector: str) -> dict[str, str]:
        return await self.store.status(SourceKey(tenant, connector))


PollerFactory = Callable[..., Awaitable[PollerUnderTest]]
IngestorHook = Callable[[HubContext], Ingestor]
"""Given the process's context, the ingestor the scheduler should publish through (e.g. one that fails)."""


@pytest.fixture
async def make_poller(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PollerFactory]:
    """Start the poll scheduler for a specs YAML text; `env` sets the secrets it references, and
    `wrap_ingestor` replaces the ingestor the scheduler publishes through."""
    started: list[tuple[PollerUnderTest, Callable[[], Awaitable[None]]]] = []

    async def start(
        specs_yaml: str,
        *,
        env: dict[str, str] | None = None,
        lease_ttl_s: float = 5.0,
        wrap_ingestor: IngestorHook | None = None,
    ) -> PollerUnderTest:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        specs = tmp_path / f"specs-{len(started)}.yaml"
        specs.write_text(specs_yaml)
        settings = Settings(
            nats_url=nats_server.url,
            redis_url=valkey_server.url,
            connectors=specs,
            data_dir=tmp_path,
            poll_lease_ttl=timedelta(seconds=lease_ttl_s),
        )
        configuration = load_configuration(settings, roles=POLLER)  # the files are checked as `run` checks them
        stack = contextlib.AsyncExitStack()
        conn = await stack.enter_async_context(connected(settings, Endpoints(nats_server.url, valkey_server.url, {})))
        plane = await control_plane(settings, conn, configuration, None)
        live, metrics = LiveConfiguration.empty(), HubMetrics()
        context = build_context(settings, live.registry, conn.nc, conn.redis, metrics=metrics)
        if wrap_ingestor is not None:
            context = dataclasses.replace(context, ingestor=wrap_ingestor(context))
        await stack.enter_async_context(ingest_path(settings, context))
        polling_role = await stack.enter_async_context(polling(settings, conn.redis, context, metrics.poll))
        await stack.enter_async_context(watching(settings, POLLER, plane, conn, live, context, polling_role, None))
        nc, js, redis = conn.nc, conn.nc.jetstream(), conn.redis

        async def stop() -> None:
            await stack.aclose()  # as `run` stops: runs finish their page, done marks, then NATS and Valkey

        under_test = PollerUnderTest(nc, js, redis, polling_role, metrics, PollStore(redis), context)
        started.append((under_test, stop))
        return under_test

    yield start
    for _, stop in reversed(started):
        await stop()
