"""Fixtures for the gate tests: the gate consumers running in-process against real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from events.streams import ensure_streams
from hub.app.config import load_configuration
from hub.app.connections import connect_nats, connect_redis
from hub.app.embedded import RunningServer
from hub.app.metrics import HubMetrics
from hub.gate.consumers import Gate, start_gate
from hub.runtime.live import Live
from hub.settings import Settings


@dataclass
class GateUnderTest:
    """In-process gate consumers with their connections."""

    nc: NATS
    js: JetStreamContext
    redis: Redis
    gate: Gate
    metrics: HubMetrics
    nats_url: str
    redis_url: str
    specs: Path


GateFactory = Callable[..., Awaitable[GateUnderTest]]


@pytest.fixture
async def make_gate(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path
) -> AsyncIterator[GateFactory]:
    """Start the policy and dispatch consumers for a specs YAML text (HUB_CONNECTORS)."""
    started: list[GateUnderTest] = []

    async def start(specs_yaml: str, *, policy: bool = True, dispatch: bool = True) -> GateUnderTest:
        specs = tmp_path / f"specs-{len(started)}.yaml"
        specs.write_text(specs_yaml)
        settings = Settings(nats_url=nats_server.url, redis_url=valkey_server.url, connectors=specs, data_dir=tmp_path)
        configuration = load_configuration(settings, roles=("policy", "dispatch"))
        nc = await connect_nats(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js, settings.stream_settings())
        redis = connect_redis(valkey_server.url, settings.store_timeout.total_seconds())
        metrics = HubMetrics()
        gate = await start_gate(
            nats_server.url, nc, redis, Live(configuration.catalog), metrics.gate, policy=policy, dispatch=dispatch
        )
        under_test = GateUnderTest(nc, js, redis, gate, metrics, nats_server.url, valkey_server.url, specs)
        started.append(under_test)
        return under_test

    yield start
    for under_test in reversed(started):
        await under_test.gate.stop()
        await under_test.nc.close()
        await under_test.redis.aclose()
