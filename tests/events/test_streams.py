"""Streams are created once and updated in place when their settings change (real nats-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StorageType

from events.streams import (
    EVENTS_STREAM,
    REJECTED_STREAM,
    STREAMS,
    Retention,
    StreamSettings,
    ensure_streams,
    missing_streams,
)
from hub.app.embedded import RunningServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def nc(nats_server: RunningServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url, allow_reconnect=False)
    yield client
    await client.close()


async def test_streams_are_created_once_then_left_alone(nc: NATS) -> None:
    js = nc.jetstream()
    assert await missing_streams(js) == list(STREAMS)

    first = await ensure_streams(js, StreamSettings())
    second = await ensure_streams(js, StreamSettings())

    assert first == [f"created {name}" for name in STREAMS]
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


async def test_retention_is_set_per_stream_and_rejected_requests_are_bounded_per_connector(nc: NATS) -> None:
    js = nc.jetstream()
    settings = StreamSettings(
        retention=((EVENTS_STREAM, Retention(3600.0, 1 << 20)),), rejected_per_connector=2, duplicate_window_s=120.0
    )
    await ensure_streams(js, settings)

    events = (await js.stream_info(EVENTS_STREAM)).config
    assert (events.max_age, events.max_bytes) == (3600.0, 1 << 20)
    for n in range(3):
        await js.publish("hub.rejected.acme.gh", b"%d" % n)
    await js.publish("hub.rejected.acme.other", b"x")
    rejected = await js.stream_info(REJECTED_STREAM)
    assert rejected.state.messages == 3  # two kept for acme/gh (the oldest dropped), one for acme/other
    assert (await js.get_msg(REJECTED_STREAM, subject="hub.rejected.acme.gh", direct=True)).data == b"2"
    assert await ensure_streams(js, settings) == []
