"""Pytest fixtures that run real nats-server and valkey-server processes (no mocks, no Docker).

Loaded by the top-level conftest with `pytest_plugins = ["tests.servers"]`. Every server gets its
own data directory and a free loopback port, and is stopped by its own PID at teardown, also when
the test failed. The servers come from `hub.app.embedded`, which uses the pip-installed binaries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from events.streams import StreamSettings, ensure_streams
from hub.app.embedded import RunningServer, start_nats, start_valkey


def _serve(server: RunningServer) -> Iterator[RunningServer]:
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A JetStream nats-server (fsync always) with its store under this test's tmp_path."""
    yield from _serve(start_nats(tmp_path / "embedded-nats"))


@pytest.fixture
def valkey_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A valkey-server for this test only."""
    yield from _serve(start_valkey(tmp_path / "embedded-valkey"))


@pytest.fixture
async def streams_nc(nats_server: RunningServer) -> AsyncIterator[NATS]:
    """A connection to `nats_server`, the hub's streams created (default settings)."""
    client = await nats.connect(nats_server.url)
    await ensure_streams(client.jetstream(), StreamSettings())
    yield client
    await client.close()


@pytest.fixture
def nats_url(nats_server: RunningServer) -> str:
    return nats_server.url


@pytest.fixture
def redis_url(valkey_server: RunningServer) -> str:
    return valkey_server.url


@pytest.fixture(scope="session")
def nats_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One nats-server shared by the whole session: use unique stream/subject names per test."""
    yield from _serve(start_nats(tmp_path_factory.mktemp("embedded-nats")))


@pytest.fixture(scope="session")
def valkey_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One valkey-server shared by the whole session: use unique key prefixes per test."""
    yield from _serve(start_valkey(tmp_path_factory.mktemp("embedded-valkey")))


@pytest.fixture
def own_servers() -> Iterator[list[RunningServer]]:
    """Servers a test starts or restarts by hand; each is stopped by its PID at teardown, even on failure.

    Request it before `make_hub` so that the hub (torn down first) stops before these servers do.
    """
    servers: list[RunningServer] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


SERVER_FIXTURES = frozenset(
    {"nats_server", "valkey_server", "nats_server_session", "valkey_server_session", "own_servers"}
)
"""The fixtures that start (or let a test start) server processes."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a server fixture, directly or through another fixture, is `integration`:
    the marker follows from the fixture, so `-m "not integration"` cannot start a server by mistake."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
