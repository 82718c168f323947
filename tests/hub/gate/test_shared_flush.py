"""Shared flushes against a real nats-server: concurrent callers share round trips, every publish
made before a call has reached the server when it returns, and a failure reaches every waiter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from hub.app.embedded import RunningServer
from hub.gate.sharedflush import SharedFlush
from hub.runtime import natsflush
from tests.conftest import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_server: RunningServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


async def test_concurrent_flushes_share_round_trips(
    nc: NATS, nats_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[bytes] = []

    async def on_message(message: Msg) -> None:
        received.append(message.data)

    listener = await nats.connect(nats_server.url)
    try:
        await listener.subscribe("shared.flush", cb=on_message)
        await natsflush.flush(listener, 5.0)
        flushes = 0
        real_flush = nc.flush

        async def counting(*args: Any, **kwargs: Any) -> None:
            nonlocal flushes
            flushes += 1
            await real_flush(*args, **kwargs)

        monkeypatch.setattr(nc, "flush", counting)
        shared = SharedFlush(nc)

        async def publish_and_flush(n: int) -> None:
            await nc.publish("shared.flush", str(n).encode())
            await shared.flush(5.0)

        await asyncio.gather(*(publish_and_flush(n) for n in range(100)))

        assert flushes <= 3, "100 concurrent flushes went out one round trip each"

        async def all_received() -> bool:
            return len(received) == 100

        await wait_for(all_received, timeout=5, what="every message at the listener")
        assert sorted(int(m) for m in received) == list(range(100))
    finally:
        await listener.close()


async def test_a_failed_flush_reaches_every_waiter(nc: NATS) -> None:
    shared = SharedFlush(nc)
    await shared.flush(5.0)
    await nc.close()

    results = await asyncio.gather(*(shared.flush(1.0) for _ in range(5)), return_exceptions=True)

    assert all(isinstance(r, nats.errors.ConnectionClosedError) for r in results), results
