"""The dedupe store against a real valkey-server: claim, held, release by owner only, done with
the dedupe window as TTL, claim expiry, and failing open (UNAVAILABLE, counted) when Valkey is gone."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hub.app.connections import connect_redis
from hub.app.embedded import RunningServer, start_valkey
from hub.app.metrics import HubMetrics
from hub.ingest.dedupe import DONE, Claim, DedupeStore, dedupe_key
from tests.conftest import wait_for

pytestmark = pytest.mark.integration

WINDOW_S = 72 * 3600.0


@pytest.fixture
async def redis(valkey_server: RunningServer) -> AsyncIterator[Redis]:
    client = connect_redis(valkey_server.url, 0.5)
    try:
        yield client
    finally:
        await client.aclose()


def store(redis: Redis, claim_ttl_s: float = 30.0, cooldown_s: float = 2.0) -> tuple[DedupeStore, HubMetrics]:
    metrics = HubMetrics()
    return DedupeStore(redis, metrics, claim_ttl_s=claim_ttl_s, cooldown_s=cooldown_s), metrics


def errors(metrics: HubMetrics, operation: str) -> float:
    value = metrics.registry.get_sample_value("hub_dedupe_store_errors_total", {"operation": operation})
    return value or 0.0


async def test_claim_then_held_for_another_token(redis: Redis) -> None:
    dedupe, _ = store(redis)
    key = dedupe_key("acme", "gh", "d-1")
    assert key == "dd:acme:gh:d-1"

    assert await dedupe.claim([key], "token-a") == [Claim.CLAIMED]
    assert await redis.get(key) == b"token-a"
    assert 0 < await redis.pttl(key) <= 30_000
    assert await dedupe.claim([key], "token-b") == [Claim.HELD]
    assert await dedupe.claim([key], "token-a") == [Claim.HELD]  # a claim is never re-entered
    assert await redis.get(key) == b"token-a"


async def test_release_only_by_the_owner(redis: Redis) -> None:
    dedupe, _ = store(redis)
    key = dedupe_key("acme", "gh", "d-2")
    assert await dedupe.claim([key], "owner") == [Claim.CLAIMED]

    await dedupe.release([key], "intruder")
    assert await redis.get(key) == b"owner"
    assert await dedupe.claim([key], "other") == [Claim.HELD]

    await dedupe.release([key], "owner")
    assert await redis.exists(key) == 0
    assert await dedupe.claim([key], "other") == [Claim.CLAIMED]


async def test_release_never_undoes_done(redis: Redis) -> None:
    dedupe, _ = store(redis)
    key = dedupe_key("acme", "gh", "d-3")
    assert await dedupe.claim([key], "owner") == [Claim.CLAIMED]
    await dedupe.mark_done([key], WINDOW_S)
    await dedupe.release([key], "owner")
    assert await redis.get(key) == DONE


async def test_done_is_remembered_for_the_dedupe_window(redis: Redis) -> None:
    dedupe, _ = store(redis)
    key = dedupe_key("acme", "gh", "d-4")
    assert await dedupe.claim([key], "owner") == [Claim.CLAIMED]

    await dedupe.mark_done([key], WINDOW_S)

    assert await redis.get(key) == DONE
    pttl = await redis.pttl(key)
    assert WINDOW_S * 1000 - 60_000 < pttl <= WINDOW_S * 1000
    for token in ("owner", "someone-else"):
        assert await dedupe.claim([key], token) == [Claim.DONE]
    assert await redis.pttl(key) > WINDOW_S * 1000 - 60_000  # a DONE answer does not shorten the window


async def test_a_batch_of_keys_is_claimed_per_key(redis: Redis) -> None:
    dedupe, _ = store(redis)
    fresh, held, done = (dedupe_key("acme", "st", f"evt_{i}") for i in range(3))
    assert await dedupe.claim([held], "other") == [Claim.CLAIMED]
    assert await dedupe.claim([done], "other") == [Claim.CLAIMED]
    await dedupe.mark_done([done], 60)

    assert await dedupe.claim([fresh, held, done], "mine") == [Claim.CLAIMED, Claim.HELD, Claim.DONE]
    await dedupe.release([fresh, held, done], "mine")
    assert (await redis.exists(fresh), await redis.get(held), await redis.get(done)) == (0, b"other", DONE)
    assert await dedupe.claim([], "mine") == []


async def test_a_claim_expires_after_the_claim_ttl(redis: Redis) -> None:
    dedupe, _ = store(redis, claim_ttl_s=0.3)
    key = dedupe_key("acme", "gh", "d-5")
    assert await dedupe.claim([key], "crashed") == [Claim.CLAIMED]
    assert 0 < await redis.pttl(key) <= 300

    async def gone() -> bool:
        return await redis.exists(key) == 0

    await wait_for(gone, timeout=5, what="the claim to expire")
    assert await dedupe.claim([key], "retry") == [Claim.CLAIMED]


async def test_valkey_down_claims_are_unavailable_fast_and_counted(redis: Redis, valkey_server: RunningServer) -> None:
    dedupe, metrics = store(redis, cooldown_s=60)
    key = dedupe_key("acme", "gh", "d-6")
    assert await dedupe.claim([key], "t") == [Claim.CLAIMED]
    valkey_server.stop()

    started = time.monotonic()
    assert await dedupe.claim([key, "dd:acme:gh:other"], "t") == [Claim.UNAVAILABLE, Claim.UNAVAILABLE]
    assert time.monotonic() - started < 0.8
    assert errors(metrics, "claim") == 1
    assert metrics.registry.get_sample_value("hub_dedupe_store_available") == 0

    # During the cool-down the store does not even try: instant, not counted again.
    started = time.monotonic()
    assert await dedupe.claim([key], "t") == [Claim.UNAVAILABLE]
    await dedupe.mark_done([key], WINDOW_S)
    await dedupe.release([key], "t")
    assert time.monotonic() - started < 0.1
    assert errors(metrics, "claim") == 1


async def test_valkey_down_without_cooldown_counts_every_operation(redis: Redis, valkey_server: RunningServer) -> None:
    dedupe, metrics = store(redis, cooldown_s=0)
    key = dedupe_key("acme", "gh", "d-7")
    valkey_server.stop()

    started = time.monotonic()
    assert await dedupe.claim([key], "t") == [Claim.UNAVAILABLE]
    await dedupe.mark_done([key], WINDOW_S)
    await dedupe.release([key], "t")
    assert time.monotonic() - started < 1.5
    assert (errors(metrics, "claim"), errors(metrics, "done"), errors(metrics, "release")) == (1, 1, 1)


async def test_the_store_recovers_when_valkey_is_back(redis: Redis, valkey_server: RunningServer) -> None:
    dedupe, metrics = store(redis, cooldown_s=0)
    key = dedupe_key("acme", "gh", "d-8")
    valkey_server.stop()
    assert await dedupe.claim([key], "t") == [Claim.UNAVAILABLE]
    assert metrics.registry.get_sample_value("hub_dedupe_store_available") == 0

    again = start_valkey(valkey_server.data_dir, port=valkey_server.port)
    try:
        assert await dedupe.claim([key], "t") == [Claim.CLAIMED]
        assert metrics.registry.get_sample_value("hub_dedupe_store_available") == 1
    finally:
        again.stop()


async def test_batches_survive_the_server_forgetting_its_scripts(redis: Redis) -> None:
    """Batches send bare EVALSHAs; after a restart (here SCRIPT FLUSH) the scripts are loaded again."""
    dedupe, metrics = store(redis)
    keys = ["dd:t:c:batch-1", "dd:t:c:batch-2"]
    assert await dedupe.claim(keys, "tok") == [Claim.CLAIMED, Claim.CLAIMED]
    await redis.script_flush()
    await dedupe.mark_done(keys, 60)
    await redis.script_flush()
    assert await dedupe.claim(keys, "other") == [Claim.DONE, Claim.DONE]
    assert errors(metrics, "claim") == errors(metrics, "done") == 0
