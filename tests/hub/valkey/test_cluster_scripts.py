"""The gate's limiter and the ingest's dedupe scripts on a real three-primary Valkey Cluster, driven by
redis-py's cluster client: every script's keys share one hash slot (hash tags), so the cluster runs
them; without the tag it refuses them (CROSSSLOT), which is what the tags are for.

The hub itself connects to one Valkey or to Sentinels (docs/deploy.md "Valkey topologies"); these
tests check that the scripts and key layout are ready for a Cluster, not that the hub connects to one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, ResponseError

from hub.app.metrics import HubMetrics
from hub.gate.limiter import Admitted, DebounceFire, DebounceWait, Limiter, ParallelScope, RateScope, Throttled
from hub.ingest.dedupe import DONE, Claim, DedupeStore, dedupe_key, unsure_key
from tests.conftest import wait_for
from tests.valkey_topologies import ValkeyCluster

WINDOW_S = 3600.0
EVENT_IDS = ["d-1", "d-2", "d-3", "a{b}c", "}x{", "{}", "x}y", "with:colons"]
"""Ids that spread over the cluster's slots, and ids with braces (which `dedupe_key` tags whole)."""


@pytest.fixture
async def cluster(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    nodes = [ClusterNode(host, port) for host, port in valkey_cluster.startup_nodes]
    client = RedisCluster(startup_nodes=nodes, socket_timeout=2.0)
    try:
        yield client
    finally:
        await client.aclose()


def as_redis(cluster: RedisCluster) -> Redis:
    """The stores are typed for one server's client; the cluster client answers the same calls."""
    return cast(Redis, cluster)


async def test_the_limiters_scripts_run_on_a_cluster(cluster: RedisCluster) -> None:
    limiter = Limiter(as_redis(cluster))  # the hub's default prefix, a hash tag
    rates = [RateScope("acme", per_second=1, burst=2), RateScope("acme/gh/deploy", per_second=1, burst=2)]
    parallels = [ParallelScope("acme", 5), ParallelScope("acme/gh/deploy", 1)]

    first = await limiter.admit("inv-1", rates, parallels, lease_ttl_s=30)
    assert isinstance(first, Admitted)
    assert first.attempt == 1
    busy = await limiter.admit("inv-2", rates, parallels, lease_ttl_s=30)
    assert isinstance(busy, Throttled)
    assert busy.reason == "parallel"
    await limiter.release("inv-1", parallels)
    second = await limiter.admit("inv-2", rates, parallels, lease_ttl_s=30)
    assert isinstance(second, Admitted)
    await limiter.release("inv-2", parallels)
    third = await limiter.admit("inv-3", rates, parallels, lease_ttl_s=30)
    assert isinstance(third, Throttled)
    assert third.reason == "rate"

    window = await limiter.debounce("acme/gh/deploy:main", "inv-4", b"first", 0.05)
    assert isinstance(window, DebounceWait)
    await limiter.debounce("acme/gh/deploy:main", "inv-5", b"latest", 0.05, order=1)
    fired: list[object] = []

    async def leader_fires() -> bool:  # the leader asks again until its window is over
        fired.append(await limiter.debounce("acme/gh/deploy:main", "inv-4", b"first", 0.05))
        return isinstance(fired[-1], DebounceFire)

    await wait_for(leader_fires, timeout=5, what="the debounce window to fire")
    assert fired[-1] == DebounceFire(payload=b"latest", count=2)
    await limiter.forget("inv-4")
    await limiter.retain("inv-3")


async def test_without_a_hash_tag_the_cluster_refuses_the_limiters_script(cluster: RedisCluster) -> None:
    limiter = Limiter(as_redis(cluster), prefix="hub:gate")  # the layout before the tag
    rates = [RateScope("acme", per_second=1, burst=2), RateScope("acme/gh/deploy", per_second=1, burst=2)]

    with pytest.raises((RedisClusterException, ResponseError)):
        await limiter.admit("inv-1", rates, [], lease_ttl_s=30)


async def test_the_dedupe_scripts_run_on_a_cluster(cluster: RedisCluster) -> None:
    store = DedupeStore(as_redis(cluster), HubMetrics(), claim_ttl_s=30.0)
    keys = [dedupe_key("acme", "gh", event_id) for event_id in EVENT_IDS]
    slots = {cluster.keyslot(key) for key in keys}
    assert len(slots) > 1  # the keys spread over the cluster (the batch is not one slot's)
    assert all(cluster.keyslot(unsure_key(key)) == cluster.keyslot(key) for key in keys)

    assert await store.claim(keys, "t1") == [Claim.CLAIMED] * len(keys)
    assert await store.claim(keys, "t2") == [Claim.HELD] * len(keys)
    await store.release_unsure(keys[:2], "t1", failed_at=1_700_000_000.5, window_s=WINDOW_S)
    assert await store.failed_at(keys[0]) == 1_700_000_000.5
    assert await store.claim(keys[:2], "t3") == [Claim.CLAIMED_AFTER_FAILURE] * 2
    await store.mark_done(keys, WINDOW_S)
    assert await store.claim(keys, "t4") == [Claim.DONE] * len(keys)
    assert await cluster.get(keys[3]) == DONE
