"""Streams are created once and updated in place when their settings change (real nats-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StorageType

from events.streams import EVENTS_STREAM, StreamSettings, ensure_streams, missing_streams
from hub.app.embedded import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_server: RunningServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url, allow_reconnect=False)
    yield client
    await client.close()


async def test_streams_are_created_once_then_left_alone(nc: NATS) -> None:
    js = nc.jetstream()
    assert await missing_streams(js) == ["HUB_EVENTS", "HUB_INVOCATIONS", "HUB_DLQ", "HUB_AUDIT"]

    first = await ensure_streams(js, StreamSettings())
    second = await ensure_streams(js, StreamSettings())

    assert first == ["created HUB_EVENTS", "created HUB_INVOCATIONS", "created HUB_DLQ", "created HUB_AUDIT"]
    assert second == []
    assert await missing_streams(js) == []
    config = (await js.stream_info(EVENTS_STREAM)).config
    assert (config.subjects, config.storage, config.duplicate_window) == (["hub.events.>"], StorageType.FILE, 900.0)


async def test_a_changed_duplicate_window_updates_the_stream_in_place(nc: NATS) -> None:
    js = nc.jetstream()
    await ensure_streams(js, StreamSettings())
    await js.publish("hub.events.acme.gh.github.push", b"{}")

    changes = await ensure_streams(js, StreamSettings(duplicate_window_s=1800.0))

    assert "updated HUB_EVENTS" in changes
    info = await js.stream_info(EVENTS_STREAM)
    assert info.config.duplicate_window == 1800.0
    assert info.state.messages == 1  # updated, not recreated
