"""Per-connector rates in Valkey (hub/control/rates.py) on a real valkey-server: per-minute buckets,
their TTL, windows, the two rates the connectors page shows, one pipeline per call, and the status
reporter flushing what the ingress counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.app.embedded import RunningServer
from hub.control.rates import BUCKET_TTL_S, Counts, Rates, RateStore, bucket_key
from hub.control.reporter import StatusReporter
from hub.ingest.activity import Activity
from tests.conftest import wait_for
from tests.hub.control.test_status_reporter import RecordingStore

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0  # a minute boundary: NOW // 60 == 30_000_000
MINUTE = 60.0


@pytest.fixture
async def redis(valkey_server: RunningServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(valkey_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_add_writes_per_minute_hash_fields_with_a_ttl(redis: Redis) -> None:
    store = RateStore(redis)
    await store.add({("acme", "gh"): Counts(3, 1), ("acme", "st"): Counts(0, 2)}, at=NOW + 5)
    await store.add({("acme", "gh"): Counts(2, 0)}, at=NOW + 50)

    key = bucket_key("acme", "gh", int(NOW // 60))
    assert key == "rates:{acme}:gh:30000000"
    assert await redis.hgetall(key) == {b"accepted": b"5", b"refused": b"1"}
    assert await redis.hgetall(bucket_key("acme", "st", int(NOW // 60))) == {b"refused": b"2"}
    assert 0 < await redis.ttl(key) <= BUCKET_TTL_S


async def test_empty_counts_write_nothing(redis: Redis) -> None:
    await RateStore(redis).add({("acme", "gh"): Counts()}, at=NOW)
    assert await redis.dbsize() == 0


async def test_counts_sum_the_window_and_leave_older_minutes_out(redis: Redis) -> None:
    store = RateStore(redis)
    for minutes_ago, accepted in ((0, 1), (4, 10), (5, 100), (14, 1000), (15, 10_000)):
        await store.add({("acme", "gh"): Counts(accepted, 1)}, at=NOW - minutes_ago * MINUTE)

    assert (await store.counts([("acme", "gh")], 5, now=NOW))[("acme", "gh")] == Counts(11, 2)
    assert (await store.counts([("acme", "gh")], 15, now=NOW))[("acme", "gh")] == Counts(1111, 4)
    assert (await store.counts([("other", "gh")], 15, now=NOW))[("other", "gh")] == Counts()
    with pytest.raises(ValueError, match="minutes must be 1-60"):
        await store.counts([("acme", "gh")], 61, now=NOW)


async def test_rates_are_events_per_minute_over_5_and_refused_share_over_15(redis: Redis) -> None:
    store = RateStore(redis)
    await store.add({("acme", "gh"): Counts(30, 0)}, at=NOW - 2 * MINUTE)
    await store.add({("acme", "gh"): Counts(20, 0)}, at=NOW)
    await store.add({("acme", "gh"): Counts(50, 25)}, at=NOW - 10 * MINUTE)  # in 15 min, not in 5

    rates = await store.rates([("acme", "gh"), ("acme", "quiet")], now=NOW)

    assert rates[("acme", "gh")] == Rates(events_per_minute=10.0, rejection_rate=0.2)
    assert rates[("acme", "quiet")] == Rates(events_per_minute=0.0, rejection_rate=None)  # shown as n/a


async def test_a_page_of_connectors_is_read_in_one_round_trip(redis: Redis, valkey_server: RunningServer) -> None:
    store = RateStore(redis)
    keys = [("t", f"hook-{i:04d}") for i in range(50)]
    await store.add(dict.fromkeys(keys, Counts(5, 0)), at=NOW)
    before = int((await redis.info("stats"))["total_commands_processed"])

    rates = await store.rates(keys, now=NOW)

    after = int((await redis.info("stats"))["total_commands_processed"])
    assert all(r.events_per_minute == 1.0 for r in rates.values())
    assert after - before == 50 * 15 + 1  # the pipeline's HMGETs (nothing else) and the INFO that counts them


async def test_the_reporter_flushes_what_the_ingress_counted(redis: Redis) -> None:
    activity = Activity()
    reporter = StatusReporter(
        RecordingStore(), activity, served=lambda: [], polled=lambda: [], poll_store=None, rates=RateStore(redis)
    )
    activity.accepted("acme", "gh", 3)
    activity.accepted("acme", "gh", 2)
    activity.refused("acme", "gh")
    reporter.start()
    try:

        async def flushed() -> bool:
            counts = await RateStore(redis).counts([("acme", "gh")], 2)
            return counts[("acme", "gh")] == Counts(5, 1)

        await wait_for(flushed, what="the counts in Valkey")
        assert activity.take_counts() == {}  # taken once, not flushed again
    finally:
        await asyncio.wait_for(reporter.stop(), 5)
