"""A flush covers what was sent before it: a subscription is live and a publish has reached the
server when it returns (real nats-server). nats-py's own flush let its PING overtake both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from hub.app.embedded import RunningServer
from hub.runtime import natsflush
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

ROUNDS = 300
"""Each round is one chance for the race; the unfixed flush lost a round about once in forty."""


@pytest.fixture
async def pair(nats_server: RunningServer) -> AsyncIterator[tuple[NATS, NATS]]:
    publisher, listener = await nats.connect(nats_server.url), await nats.connect(nats_server.url)
    try:
        yield publisher, listener
    finally:
        await publisher.close()
        await listener.close()


async def test_what_a_flush_returns_after_was_read_by_the_server(pair: tuple[NATS, NATS]) -> None:
    publisher, listener = pair
    received: set[str] = set()

    async def on_message(message: Msg) -> None:
        received.add(message.subject)

    for n in range(ROUNDS):
        subject = f"flush.order.{n}"
        await listener.subscribe(subject, cb=on_message)
        await natsflush.flush(listener, 5.0)  # the subscription is live now
        await publisher.publish(subject, b"x")
        await natsflush.flush(publisher, 5.0)

    async def all_received() -> bool:
        return len(received) == ROUNDS

    await wait_for(all_received, timeout=5, what=f"one message on each of {ROUNDS} subjects")


async def test_a_flush_on_a_closed_connection_raises(pair: tuple[NATS, NATS]) -> None:
    publisher, _ = pair
    await publisher.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        await natsflush.flush(publisher, 1.0)
