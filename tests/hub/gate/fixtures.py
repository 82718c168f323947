"""Fixtures for the gate tests: the gate consumers running in-process against real servers, started
by the role context managers `connector-hub run` uses, on the catalog the KV watcher builds."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from hub.app.config import load_configuration
from hub.app.connections import Endpoints
from hub.app.embedded import RunningServer
from hub.app.metrics import HubMetrics
from hub.app.roles import start_process
from hub.gate.consumers import Gate
from hub.settings import Settings


@dataclass
class GateUnderTest:
    """In-process gate consumers with their connections."""

    nc: NATS
    js: JetStreamContext
    redis: Redis
    gate: Gate | None
    """None when neither consumer was asked for (a test drives one by hand)."""
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
    started: list[tuple[GateUnderTest, contextlib.AsyncExitStack]] = []

    async def start(specs_yaml: str, *, policy: bool = True, dispatch: bool = True) -> GateUnderTest:
        specs = tmp_path / f"specs-{len(started)}.yaml"
        specs.write_text(specs_yaml)
        settings = Settings(nats_url=nats_server.url, redis_url=valkey_server.url, connectors=specs, data_dir=tmp_path)
        roles = tuple(role for role, wanted in (("policy", policy), ("dispatch", dispatch)) if wanted)
        configuration = load_configuration(settings, roles=roles)
        stack = contextlib.AsyncExitStack()
        endpoints = Endpoints(nats_server.url, valkey_server.url, {})
        process = await start_process(stack, settings, configuration, endpoints, roles)
        nc, redis = process.conn.nc, process.conn.redis
        under_test = GateUnderTest(
            nc, nc.jetstream(), redis, process.gate, process.metrics, nats_server.url, valkey_server.url, specs
        )
        started.append((under_test, stack))
        return under_test

    yield start
    for _, stack in reversed(started):
        await stack.aclose()
