"""The hub on a replicated Valkey behind Sentinel (HUB_REDIS_SENTINELS): its stores work through the
client built from the Sentinels, and after the primary is killed and the Sentinel promotes the
replica, the hub's client follows: a webhook delivered after the failover is claimed and marked done
in the promoted replica, its redelivery is a duplicate, and the limiter admits."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import RedisError

from hub.app.config import load_configuration
from hub.app.connections import Endpoints, connect_redis, servers
from hub.app.embedded import RunningServer, free_port
from hub.app.metrics import HubMetrics
from hub.app.roles import listening, start_process
from hub.app.valkey import configured_locator
from hub.cli.client import redis_url as cli_redis_url
from hub.gate.limiter import Admitted, Limiter, RateScope
from hub.ingest.dedupe import DONE, Claim, DedupeStore, dedupe_key
from hub.ingress.app import build_app
from hub.poll.store import PollStore, SourceKey
from hub.settings import Settings
from tests.conftest import INGRESS, HubUnderTest, wait_for
from tests.hub.ingress.signing import GITHUB, TENANT, SecretSpec, new_secret, specs_yaml
from tests.valkey_topologies import SentinelSet, client

FAILOVER_TIMEOUT_S = 30.0


def sentinel_settings(topology: SentinelSet, **extra: Any) -> Settings:
    return Settings(redis_sentinels=topology.sentinels_setting, redis_sentinel_master=topology.master, **extra)


@pytest.fixture
async def sentinel_client(valkey_sentinel_set: SentinelSet) -> AsyncIterator[Redis]:
    """The hub's client of the Sentinels' primary; a dead Sentinel listed first is passed over."""
    settings = Settings(
        redis_sentinels=f"127.0.0.1:{free_port()},{valkey_sentinel_set.sentinels_setting}",
        redis_sentinel_master=valkey_sentinel_set.master,
    )
    locator = configured_locator(settings)
    assert locator is not None
    redis = connect_redis(locator, 1.0)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_the_hubs_stores_work_through_the_sentinels(
    valkey_sentinel_set: SentinelSet, sentinel_client: Redis
) -> None:
    dedupe = DedupeStore(sentinel_client, HubMetrics(), claim_ttl_s=30.0)
    key = dedupe_key(TENANT, "gh", "d-1")
    assert await dedupe.claim([key], "t1") == [Claim.CLAIMED]
    await dedupe.mark_done([key], 60.0)
    assert await dedupe.claim([key], "t2") == [Claim.DONE]

    limiter = Limiter(sentinel_client)
    assert isinstance(await limiter.admit("inv-1", [RateScope("acme", 10, 5)], [], lease_ttl_s=30), Admitted)

    polls = PollStore(sentinel_client)
    source = SourceKey(TENANT, "feed")
    assert await polls.acquire(source, "me", 30.0)
    assert not await polls.acquire(source, "other", 30.0)
    assert await polls.renew(source, "me", 30.0)

    with client(valkey_sentinel_set.primary) as primary:  # it all went to the primary the Sentinel names
        assert primary.get(key) == DONE.decode()
        assert primary.get(source.key("lease")) == "me"


def test_with_sentinels_no_embedded_valkey_starts_and_the_locator_names_them(tmp_path: Path) -> None:
    settings = Settings(
        nats_url="nats://127.0.0.1:4222",  # given, so nothing is started for NATS either
        redis_url="redis://127.0.0.1:6379/0",
        redis_sentinels="127.0.0.1:26379,[::1]:26380",
        redis_sentinel_master="cache-1",
        data_dir=tmp_path,
    )
    with servers(settings) as endpoints:
        assert endpoints.embedded_pids == {}
        assert endpoints.redis_url == "redis+sentinel://127.0.0.1:26379,[::1]:26380/cache-1"
    assert configured_locator(Settings(redis_url="redis://v:6379/0")) == "redis://v:6379/0"
    assert configured_locator(Settings()) is None


def test_cli_verbs_open_valkey_through_the_sentinels(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://v:6379/0", redis_sentinels="s1:26379", data_dir=tmp_path)
    assert cli_redis_url(settings) == "redis+sentinel://s1:26379/mymaster"


async def test_without_an_answering_sentinel_a_command_fails_fast() -> None:
    settings = Settings(redis_sentinels=f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}")
    locator = configured_locator(settings)
    assert locator is not None
    redis = connect_redis(locator, 0.5)
    started = time.monotonic()
    try:
        with pytest.raises(MasterNotFoundError, match="No master found for 'mymaster'"):
            await redis.ping()
    finally:
        await redis.aclose()
    assert time.monotonic() - started < 3.0  # one refused connection per Sentinel, no retries


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sentinel-1", "'sentinel-1' is not host:port"),
        ("sentinel-1:0", "the port is not a number from 1 to 65535"),
        ("sentinel-1:26379,s2:port", "'s2:port': the port is not a number"),
        ("redis://s1:26379", "is not a host name or an IP address"),
    ],
)
def test_a_bad_sentinel_list_is_refused_naming_the_setting(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match="HUB_REDIS_SENTINELS") as refused:
        Settings(redis_sentinels=value)
    assert problem in str(refused.value)


def test_a_bad_master_name_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="HUB_REDIS_SENTINEL_MASTER"):
        Settings(redis_sentinels="s1:26379", redis_sentinel_master="my master")


HubStarter = Callable[[SentinelSet], Awaitable[HubUnderTest]]


@pytest.fixture
async def sentinel_hub(
    nats_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[HubStarter]:
    """The ingress, as `run` starts it, with HUB_REDIS_SENTINELS instead of HUB_REDIS_URL."""
    stack = contextlib.AsyncExitStack()

    async def start(topology: SentinelSet) -> HubUnderTest:
        secret = SecretSpec("k1", "SENTINEL_GH_SECRET", new_secret(GITHUB.name))
        monkeypatch.setenv(secret.env, secret.value)
        spec_file = tmp_path / "connectors.yaml"
        spec_file.write_text(specs_yaml(GITHUB.doc([secret])))
        settings = sentinel_settings(
            topology, nats_url=nats_server.url, data_dir=tmp_path / "hub", connectors=spec_file, http_port=0
        )
        configuration = load_configuration(settings, roles=INGRESS)
        locator = configured_locator(settings)
        assert locator is not None
        assert locator.startswith("redis+sentinel://")
        process = await start_process(stack, settings, configuration, Endpoints(nats_server.url, locator, {}), INGRESS)
        url = await stack.enter_async_context(listening(build_app(process.context), "127.0.0.1", 0, reuse_port=False))
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        return HubUnderTest(url, process.context, process.conn.nc, process.context.js, process.conn.redis, session)

    try:
        yield start
    finally:
        await stack.aclose()


async def marked_done(server: RunningServer, key: str) -> bool:
    """The key holds the done mark (written after the answer, so waited for)."""
    with client(server) as redis:
        return bool(redis.get(key) == DONE.decode())


async def _answers(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except RedisError:
        return False


async def test_after_a_failover_the_hub_follows_the_promoted_replica(
    valkey_sentinel_set: SentinelSet, sentinel_hub: HubStarter
) -> None:
    topology = valkey_sentinel_set
    hub = await sentinel_hub(topology)
    secret = os.environ["SENTINEL_GH_SECRET"]
    path = f"{TENANT}/{GITHUB.connector}"
    before = GITHUB.signed(secret)
    assert (await hub.post(path, before.body, before.headers)).status == 202
    before_key = dedupe_key(TENANT, GITHUB.connector, before.event_id)

    await wait_for(lambda: marked_done(topology.replica, before_key), what="the done mark to reach the replica")

    os.kill(topology.primary.pid, signal.SIGKILL)  # the primary dies without a word
    topology.primary.process.wait(10)

    async def promoted() -> bool:
        return topology.primary_port() == topology.replica.port

    await wait_for(promoted, timeout=FAILOVER_TIMEOUT_S, what="the Sentinel to promote the replica")
    await wait_for(lambda: _answers(hub.redis), timeout=10, what="the hub's client to reach the new primary")

    after = GITHUB.signed(secret)
    accepted = await hub.post(path, after.body, after.headers)
    assert accepted.status == 202, accepted.body
    key = dedupe_key(TENANT, GITHUB.connector, after.event_id)
    await wait_for(lambda: marked_done(topology.replica, key), what="the done mark in the promoted replica")
    again = await hub.post(path, after.body, after.headers)
    assert again.status == 200, again.body
    assert again.json() == {"accepted": 0, "duplicates": 1, "ids": [after.event_id]}
    redelivered = await hub.post(path, before.body, before.headers)  # its done mark survived the failover
    assert redelivered.json() == {"accepted": 0, "duplicates": 1, "ids": [before.event_id]}
    assert await hub.event_count() == 2

    limiter = Limiter(hub.redis)
    assert isinstance(await limiter.admit("inv-after", [RateScope("acme", 10, 5)], [], lease_ttl_s=30), Admitted)
