"""The script batcher against a real valkey-server: concurrent calls share pipelines, calls keep
their order, NOSCRIPT re-sends only what did not run, and a failed batch fails each of its callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from hub.app.connections import connect_redis
from hub.app.embedded import RunningServer
from hub.ingest.scriptbatch import ScriptBatcher

pytestmark = pytest.mark.integration

# Counts its runs per key, so a script run twice for one key shows.
COUNTING = "return redis.call('INCR', KEYS[1])"
SET_VALUE = "return redis.call('SET', KEYS[1], ARGV[1])"
FAILS_FOR_BAD = "if KEYS[1] == 'bad' then return redis.error_reply('refused') end return 1"


@pytest.fixture
async def redis(valkey_server: RunningServer) -> AsyncIterator[Redis]:
    client = connect_redis(valkey_server.url, 0.5)
    try:
        await client.flushall()
        yield client
    finally:
        await client.aclose()


class PipelineCounter:
    """Counts the pipelines a client opens (the real ones, against the real server)."""

    def __init__(self, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = redis.pipeline

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(redis, "pipeline", counting)


async def test_concurrent_calls_share_round_trips(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    batcher = ScriptBatcher(redis)
    script = redis.register_script(COUNTING)
    pipelines = PipelineCounter(redis, monkeypatch)

    results = await asyncio.gather(*(batcher.call_per_key(script, [f"k{i}", f"k{i}b"], []) for i in range(100)))

    assert results == [[1, 1]] * 100
    assert pipelines.count <= 3, "100 concurrent calls went out one round trip each"
    assert await redis.get("k7") == b"1"


async def test_one_run_over_several_keys(redis: Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = redis.register_script("return redis.call('MSET', KEYS[1], ARGV[1], KEYS[2], ARGV[1])")

    results = await asyncio.gather(*(batcher.call(script, [f"m{i}", f"n{i}"], [str(i)]) for i in range(20)))

    assert results == [b"OK"] * 20
    assert (await redis.get("m3"), await redis.get("n3")) == (b"3", b"3")


async def test_calls_reach_valkey_in_the_order_they_were_made(redis: Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = redis.register_script(SET_VALUE)

    await asyncio.gather(*(batcher.call_per_key(script, ["ordered"], [str(i)]) for i in range(200)))

    assert await redis.get("ordered") == b"199"


async def test_noscript_resends_only_what_did_not_run(redis: Redis) -> None:
    batcher = ScriptBatcher(redis)
    counting = redis.register_script(COUNTING)
    setting = redis.register_script(SET_VALUE)
    assert await batcher.call_per_key(counting, ["a"], []) == [1]
    await redis.script_flush()
    await redis.script_load(SET_VALUE)  # one script survives, the other is gone

    results = await asyncio.gather(
        batcher.call_per_key(counting, ["a", "b"], []), batcher.call_per_key(setting, ["c"], ["v"])
    )

    assert results == [[2, 1], [b"OK"]]  # each key counted once: no script ran twice
    assert (await redis.get("a"), await redis.get("b"), await redis.get("c")) == (b"2", b"1", b"v")


async def test_a_script_error_reaches_only_its_caller(redis: Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = redis.register_script(FAILS_FOR_BAD)

    results = await asyncio.gather(
        batcher.call_per_key(script, ["good"], []), batcher.call_per_key(script, ["bad"], []), return_exceptions=True
    )

    assert results[0] == [1]
    assert isinstance(results[1], ResponseError)
    assert "refused" in str(results[1])


async def test_a_cancelled_caller_does_not_stop_the_others(redis: Redis) -> None:
    batcher = ScriptBatcher(redis)
    script = redis.register_script(COUNTING)
    first = asyncio.ensure_future(batcher.call_per_key(script, ["x"], []))
    second = asyncio.ensure_future(batcher.call_per_key(script, ["y"], []))
    await asyncio.sleep(0)  # both queued, the batch under way
    first.cancel()

    assert await asyncio.wait_for(second, 5) == [1]
    assert await batcher.call_per_key(script, ["z"], []) == [1]


async def test_a_lost_server_fails_every_caller_of_the_batch(redis: Redis, valkey_server: RunningServer) -> None:
    batcher = ScriptBatcher(redis)
    script = redis.register_script(COUNTING)
    assert await batcher.call_per_key(script, ["before"], []) == [1]
    valkey_server.stop()

    results = await asyncio.gather(
        *(batcher.call_per_key(script, [f"k{i}"], []) for i in range(5)), return_exceptions=True
    )

    assert all(isinstance(r, RedisError) for r in results), results
