"""Shared test harness: real nats-server and valkey-server (tests/servers.py), and the hub's
ingress running in-process against them, started by the role context managers `connector-hub run`
uses (hub.app.roles.start_process): the spec files are stored in the spec store and the ingress
serves what the KV watcher builds from there, as in production."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import is_hypothesis_test, settings
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from redis.asyncio import Redis

from events.streams import EVENTS_STREAM
from hub.app.config import load_configuration
from hub.app.connections import Endpoints
from hub.app.embedded import RunningServer
from hub.app.roles import listening, start_process
from hub.ingest.context import HubContext
from hub.ingress.app import build_app
from hub.settings import Settings

pytest_plugins = [
    "tests.servers",
    "tests.cluster",
    "tests.hub.control.fixtures",
    "tests.hub.gate.fixtures",
    "tests.hub.poll.fixtures",
    "tests.valkey_topologies",
]

# Property tests are derandomized by default so that CI runs the same examples every time (a
# failure is then reproducible, never a coin toss); `HYPOTHESIS_PROFILE=explore` searches anew.
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every Hypothesis test `property`, so that `-m property` selects them (scripts/test runs them
    once more under the explore profile with a fresh, printed seed): a test decorated with `@given`,
    and one that applies `given` in its own body (a parametrized test that builds its property per
    case, as the adapters' conformance test does)."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        code = getattr(inspect.unwrap(item.obj), "__code__", None)
        if is_hypothesis_test(item.obj) or (code is not None and "given" in code.co_names):
            item.add_marker(pytest.mark.property)


LARGE_BODY = 1024 * 1024
INGRESS = ("ingress",)


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,  # noqa: ASYNC109 - a bounded poll of a condition, not one awaited call
    what: str = "condition",
) -> None:
    """Poll an async condition until it holds, failing the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Reply:
    """A response as the tests look at it."""

    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class HubUnderTest:
    """A running ingress with its real NATS and Valkey."""

    url: str
    context: HubContext
    nc: NATS
    js: JetStreamContext
    redis: Redis
    session: aiohttp.ClientSession

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | list[tuple[str, str]] | None = None
    ) -> Reply:
        """POST `body` to `/hooks/<path>` (path is `tenant/connector`)."""
        data = io.BytesIO(body) if len(body) > LARGE_BODY else body  # aiohttp warns on large raw bytes
        async with self.session.post(
            f"{self.url}/hooks/{path}", data=data, headers=headers or {}, allow_redirects=False
        ) as response:
            return Reply(response.status, await response.read(), dict(response.headers))

    async def get(self, path: str) -> Reply:
        async with self.session.get(f"{self.url}{path}", allow_redirects=False) as response:
            return Reply(response.status, await response.read(), dict(response.headers))

    async def event_count(self) -> int:
        """Messages stored in HUB_EVENTS."""
        return int((await self.js.stream_info(EVENTS_STREAM)).state.messages)

    async def events(self) -> list[RawStreamMsg]:
        """Every message stored in HUB_EVENTS, in order."""
        state = (await self.js.stream_info(EVENTS_STREAM)).state
        if not state.messages:
            return []
        return [await self.js.get_msg(EVENTS_STREAM, seq) for seq in range(state.first_seq, state.last_seq + 1)]


HubFactory = Callable[..., Awaitable[HubUnderTest]]


@pytest.fixture
async def make_hub(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HubFactory]:
    """Start the ingress for a connectors YAML text; `env` sets the secrets it references."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(connectors_yaml: str, env: dict[str, str] | None = None, **settings: Any) -> HubUnderTest:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        spec_file = tmp_path / f"connectors-{len(cleanups)}.yaml"
        spec_file.write_text(connectors_yaml)
        hub_settings = Settings(
            nats_url=nats_server.url,
            redis_url=valkey_server.url,
            data_dir=tmp_path / "hub",
            connectors=spec_file,
            http_port=0,
            **settings,
        )
        configuration = load_configuration(hub_settings, roles=INGRESS)  # the files are checked as `run` checks them
        stack = contextlib.AsyncExitStack()
        endpoints = Endpoints(nats_server.url, valkey_server.url, {})
        process = await start_process(stack, hub_settings, configuration, endpoints, INGRESS)
        context = process.context
        url = await stack.enter_async_context(listening(build_app(context), "127.0.0.1", 0, reuse_port=False))
        session = aiohttp.ClientSession()

        async def stop() -> None:
            await session.close()
            await stack.aclose()  # as `run` stops: the listener, the watcher, the done marks, then NATS and Valkey

        cleanups.append(stop)
        return HubUnderTest(url, context, process.conn.nc, context.js, process.conn.redis, session)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()
