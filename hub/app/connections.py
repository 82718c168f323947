"""The hub's connections: NATS and Valkey at the configured URLs, or embedded servers started under
`HUB_DATA_DIR` where no URL is set (they run in their own session and die with the hub)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import nats
import nats.errors
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from hub.app import embedded
from hub.app.valkey import configured_locator, connect_valkey
from hub.errors import ConfigError, Problem
from hub.settings import Settings, nats_servers, nats_shown

log = logging.getLogger(__name__)

FIRST_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the hub's NATS and Valkey are, and the PIDs of those it started itself."""

    nats_url: str
    redis_url: str
    embedded_pids: dict[str, int]


@dataclass(frozen=True, slots=True)
class Connections:
    """One process's NATS and Valkey clients."""

    nc: NATS
    redis: Redis


@contextlib.contextmanager
def servers(settings: Settings) -> Iterator[Endpoints]:
    """External URLs as given, else embedded servers under HUB_DATA_DIR, stopped on exit."""
    started: list[embedded.RunningServer] = []
    try:
        nats_url, redis_url = settings.nats_url, configured_locator(settings)
        if nats_url is None:
            server = embedded.start_nats(settings.data_dir, sync_interval=settings.nats_sync_interval)
            started.append(server)
            nats_url = server.url
            log.info("HUB_NATS_URL is unset: started embedded nats-server", extra=_described(server))
        if redis_url is None:
            server = embedded.start_valkey(settings.data_dir)
            started.append(server)
            redis_url = server.url
            log.info("HUB_REDIS_URL is unset: started embedded valkey-server", extra=_described(server))
        yield Endpoints(nats_url, redis_url, {server.name: server.pid for server in started})
    finally:
        for server in reversed(started):
            server.stop()
            log.info("embedded server stopped", extra={"server": server.name, "pid": server.pid})


def _described(server: embedded.RunningServer) -> dict[str, object]:
    return {"url": server.url, "pid": server.pid, "data_dir": str(server.data_dir)}


@contextlib.asynccontextmanager
async def connected(settings: Settings, endpoints: Endpoints) -> AsyncIterator[Connections]:
    """NATS and Valkey clients, closed last: NATS drained (pending publishes and acks flushed), then
    Valkey closed, after every role above them has stopped."""
    nc = await connect_nats(endpoints.nats_url)
    redis = connect_redis(endpoints.redis_url, settings.store_timeout.total_seconds())
    try:
        yield Connections(nc, redis)
    finally:
        with contextlib.suppress(Exception):  # best effort on the way out; the servers stop next
            await nc.drain()
        await redis.aclose()


async def connect_nats(url: str) -> NATS:
    """A NATS connection that reconnects forever (publishes meanwhile fail with 503).

    Nothing is buffered across a disconnection: nats-py would otherwise keep what was written while
    the connection was down (and what was queued but unsent when it dropped) and send it after the
    reconnect, storing events whose senders were answered 503 long before (docs/design.md §3).
    With `pending_size=0` a publish while disconnected fails at once, and the disconnect callback
    drops what was queued but never sent (`_forget_unsent`).
    """

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", extra={"error": f"{type(exc).__name__}: {exc}"})

    client: list[NATS] = []  # set once connected; a disconnect while closing is no news

    async def on_disconnected() -> None:
        if client:
            _forget_unsent(client[0])
        if not (client and client[0].is_closed):
            log.warning("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")

    connecting = nats.connect(
        nats_servers(url),  # one URL or a cluster's list
        name="connector-hub",
        connect_timeout=2,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        pending_size=0,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    try:  # nats-py retries a refused first connection forever; a wrong URL must fail start-up instead
        client.append(await asyncio.wait_for(connecting, FIRST_CONNECT_TIMEOUT_S))
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        problem = f"cannot connect to {nats_shown(url)}: {type(exc).__name__}"
        raise ConfigError([Problem("", "HUB_NATS_URL", problem)]) from None
    return client[0]


def _forget_unsent(nc: NATS) -> None:
    """Drop the commands nats-py queued but could not send before its connection dropped.

    Their callers (publishes waiting for a PubAck, acks) time out and are answered or retried as
    failures; sent after the reconnect, a publish would land after its sender was told 503. nats-py
    has no public call for this; it is called from the disconnect callback, after the old transport
    closed and before the new one is opened.
    """
    nc._pending = []
    nc._pending_data_size = 0


def connect_redis(url: str, timeout_s: float) -> Redis:
    """A Valkey client that fails fast (no retries, short timeouts): the ingress fails open instead.

    `url` is a `redis://` URL or a Sentinel locator (`hub.app.valkey`)."""
    return connect_valkey(url, timeout_s)
