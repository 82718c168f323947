"""Fixtures for the poll tests: the poll scheduler running in-process against real servers, wired as
`connector-hub run --role poller` wires it, and loopback sources the specs explicitly allow."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from events.streams import ensure_streams
from hub.app.config import load_configuration
from hub.app.connections import connect_nats, connect_redis
from hub.app.embedded import RunningServer
from hub.app.metrics import HubMetrics
from hub.app.roles import Polling, build_context
from hub.ingest.context import HubContext
from hub.ingest.ingestor import Ingestor
from hub.poll.store import PollStore, SourceKey
from hub.runtime.live import Live
from hub.settings import Settings
from tests.gate.harness import stream_messages

EVENTS = "HUB_EVENTS"


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
        settings = Settings(nats_url=nats_server.url, redis_url=valkey_server.url, connectors=specs, data_dir=tmp_path)
        configuration = load_configuration(settings, roles=("poller",))
        nc = await connect_nats(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js, settings.stream_settings())
        redis = connect_redis(valkey_server.url, settings.store_timeout.total_seconds())
        context = build_context(settings, Live(configuration.registry), nc, redis)
        if wrap_ingestor is not None:
            context = dataclasses.replace(context, ingestor=wrap_ingestor(context))
        polling = Polling.start(
            configuration.sources,
            PollStore(redis),
            context.ingestor,
            context.metrics.poll,
            lease_ttl_s,
        )

        async def stop() -> None:
            try:
                await polling.stop(5.0)  # re-raises what stopped the scheduler, if anything did
            finally:
                await context.ingestor.drain(5.0)  # as the runner stops: done marks before the store closes
                await nc.close()
                await redis.aclose()

        under_test = PollerUnderTest(nc, js, redis, polling, context.metrics, PollStore(redis), context)
        started.append((under_test, stop))
        return under_test

    yield start
    for _, stop in reversed(started):
        await stop()
