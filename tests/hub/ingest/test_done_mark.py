"""The done mark follows the answer: `ingest` returns once JetStream acked, the mark is written in
its own task, and a stopping hub waits for the marks on their way. Real nats-server and Valkey;
only the moment the mark is written is held back by the test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from events.streams import EVENTS_STREAM, ensure_streams
from hub.app.connections import connect_nats, connect_redis
from hub.app.embedded import RunningServer
from hub.app.metrics import HubMetrics
from hub.ingest.dedupe import DONE, DedupeStore, dedupe_key
from hub.ingest.ingestor import Ingestor
from hub.ingest.publisher import Publisher
from hub.settings import Settings
from tests.conftest import wait_for
from tests.hub.gate.harness import envelope

pytestmark = pytest.mark.integration

CLAIM_TTL_S = 30.0


@dataclass(frozen=True)
class Source:
    tenant: str = "acme"
    name: str = "gh"
    provider: str = "github"
    dedupe_window_s: float = 3600.0
    publish_deadline_s: float = 5.0


class HeldDoneMarks(DedupeStore):
    """The real store, except that done marks wait for `go` before they are written."""

    def __init__(self, redis: Redis, metrics: HubMetrics) -> None:
        super().__init__(redis, metrics, claim_ttl_s=CLAIM_TTL_S)
        self.go = asyncio.Event()

    async def mark_done(self, keys: Sequence[str], window_s: float) -> None:
        await self.go.wait()
        await super().mark_done(keys, window_s)


@dataclass
class Parts:
    nc: NATS
    redis: Redis
    store: HeldDoneMarks
    ingestor: Ingestor


@pytest.fixture
async def parts(nats_server: RunningServer, valkey_server: RunningServer) -> AsyncIterator[Parts]:
    nc = await connect_nats(nats_server.url)
    await ensure_streams(nc.jetstream(), Settings().stream_settings())
    redis = connect_redis(valkey_server.url, 2.0)
    metrics = HubMetrics()
    store = HeldDoneMarks(redis, metrics)
    try:
        yield Parts(nc, redis, store, Ingestor(store, Publisher(nc, metrics), metrics, claim_ttl_s=CLAIM_TTL_S))
    finally:
        store.go.set()
        await nc.close()
        await redis.aclose()


async def test_ingest_returns_after_the_puback_before_the_done_mark(parts: Parts) -> None:
    event = envelope("acme", "gh", "github.push")
    key = dedupe_key("acme", "gh", event.id)

    result = await asyncio.wait_for(parts.ingestor.ingest(Source(), [event]), 5)

    assert result.accepted == [event.id]
    assert (await parts.nc.jetstream().stream_info(EVENTS_STREAM)).state.messages == 1  # in the stream
    assert await parts.redis.get(key) not in (None, DONE)  # still our claim: the mark is held back
    parts.store.go.set()

    async def marked() -> bool:
        return await parts.redis.get(key) == DONE

    await wait_for(marked, 5, "the done mark")


async def test_drain_waits_for_the_marks_on_their_way(parts: Parts) -> None:
    event = envelope("acme", "gh", "github.push")
    await parts.ingestor.ingest(Source(), [event])
    draining = asyncio.ensure_future(parts.ingestor.drain(5))
    await asyncio.sleep(0.05)  # drain must be waiting for the held mark, not done without it
    assert not draining.done()

    parts.store.go.set()
    await asyncio.wait_for(draining, 5)

    assert await parts.redis.get(dedupe_key("acme", "gh", event.id)) == DONE  # written before drain returned


async def test_drain_gives_up_after_its_timeout_and_says_so(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    event = envelope("acme", "gh", "github.push")
    await parts.ingestor.ingest(Source(), [event])

    with caplog.at_level(logging.WARNING, logger="hub.ingest.ingestor"):
        await asyncio.wait_for(parts.ingestor.drain(0.05), 5)

    assert any(r.message == "done marks not written at stop" for r in caplog.records)
    # The claim stays until its TTL; a redelivery after it is absorbed by JetStream's duplicate window.
    assert await parts.redis.get(dedupe_key("acme", "gh", event.id)) not in (None, DONE)
