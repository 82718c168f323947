"""Nothing lost when a server goes away: NATS down is a 503 the sender retries (claim released),
Valkey down fails open to JetStream's duplicate window (counted, reported by /readyz)."""

from __future__ import annotations

import re
import time

import pytest

from hub.app.embedded import RunningServer, start_nats
from tests.conftest import HubFactory, HubUnderTest, wait_for
from tests.hub.app.ops import ops_get
from tests.hub.ingress.signing import GITHUB, STRIPE, TENANT, Provider, SecretSpec, new_secret, specs_yaml

pytestmark = pytest.mark.integration


async def start(make_hub: HubFactory, provider: Provider, **settings: object) -> tuple[HubUnderTest, str]:
    secret = SecretSpec("k1", f"FAIL_{provider.connector.upper()}_SECRET", new_secret(provider.name))
    hub = await make_hub(specs_yaml(provider.doc([secret])), env={secret.env: secret.value}, **settings)
    return hub, secret.value


async def count_msg_id(hub: HubUnderTest, msg_id: str) -> int:
    return sum(1 for m in await hub.events() if (m.headers or {}).get("Nats-Msg-Id") == msg_id)


def metric(text: str, name: str) -> float:
    """The sum of every sample of `name` (any labels) in Prometheus text format."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


@pytest.mark.parametrize("provider", [GITHUB, STRIPE], ids=["github", "stripe"])
async def test_nats_down_is_503_then_the_retry_lands_once(
    own_servers: list[RunningServer], make_hub: HubFactory, nats_server: RunningServer, provider: Provider
) -> None:
    hub, secret = await start(make_hub, provider, publish_timeout="2s")
    path = f"{TENANT}/{provider.connector}"
    delivery = provider.signed(secret)
    key = f"dd:{TENANT}:{provider.connector}:{delivery.event_id}"

    nats_server.stop()
    await wait_for(lambda: _async(not hub.nc.is_connected), timeout=10, what="the hub to see NATS gone")
    reply = await hub.post(path, delivery.body, delivery.headers)

    assert reply.status == 503, reply.body
    assert reply.json()["error"] == "unavailable"
    assert int(reply.headers["Retry-After"]) >= 1
    assert await hub.redis.exists(key) == 0, "the dedupe claim must be released so the retry can deliver"

    own_servers.append(start_nats(nats_server.data_dir, port=nats_server.port))
    await wait_for(lambda: _async(hub.nc.is_connected), timeout=15, what="the hub to reconnect to NATS")
    retry = await hub.post(path, delivery.body, delivery.headers)

    assert retry.status in (200, 202), retry.body
    assert retry.json()["ids"] == [delivery.event_id]
    assert await count_msg_id(hub, f"{TENANT}:{provider.connector}:{delivery.event_id}") == 1
    assert await hub.event_count() == 1
    assert await hub.redis.get(key) == b"done"
    again = await hub.post(path, delivery.body, delivery.headers)
    assert again.status == 200
    assert await hub.event_count() == 1


async def test_acknowledged_events_survive_a_nats_restart(
    own_servers: list[RunningServer], make_hub: HubFactory, nats_server: RunningServer
) -> None:
    """A 2xx means on disk: the stream still holds the event after nats-server restarts."""
    hub, secret = await start(make_hub, GITHUB)
    delivery = GITHUB.signed(secret)
    assert (await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)).status == 202

    nats_server.stop()
    await wait_for(lambda: _async(not hub.nc.is_connected), timeout=10, what="the hub to see NATS gone")
    own_servers.append(start_nats(nats_server.data_dir, port=nats_server.port))
    await wait_for(lambda: _async(hub.nc.is_connected), timeout=15, what="the hub to reconnect to NATS")

    assert await count_msg_id(hub, f"{TENANT}:gh:{delivery.event_id}") == 1


async def test_missing_stream_is_503_not_500_and_releases_the_claim(make_hub: HubFactory) -> None:
    """Publishing can also fail with "no responders" (the stream is gone): still a 503 to retry."""
    hub, secret = await start(make_hub, GITHUB, publish_timeout="2s")
    delivery = GITHUB.signed(secret)
    await hub.js.delete_stream("HUB_EVENTS")

    reply = await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)

    assert reply.status == 503, (reply.status, reply.body)
    assert reply.json()["error"] == "unavailable"
    assert await hub.redis.exists(f"dd:{TENANT}:gh:{delivery.event_id}") == 0


async def test_valkey_down_fails_open_to_the_jetstream_duplicate_window(
    make_hub: HubFactory, valkey_server: RunningServer
) -> None:
    hub, secret = await start(make_hub, GITHUB)
    path = f"{TENANT}/gh"
    valkey_server.stop()

    first = GITHUB.signed(secret)
    reply = await hub.post(path, first.body, first.headers)
    assert reply.status == 202, reply.body
    assert reply.json() == {"accepted": 1, "duplicates": 0, "ids": [first.event_id]}

    again = await hub.post(path, first.body, first.headers)
    assert again.status == 200, again.body
    assert again.json() == {"accepted": 0, "duplicates": 1, "ids": [first.event_id]}

    second = GITHUB.signed(secret)
    assert (await hub.post(path, second.body, second.headers)).status == 202
    assert await hub.event_count() == 2
    assert await count_msg_id(hub, f"{TENANT}:gh:{first.event_id}") == 1

    metrics = (await ops_get(hub, "/metrics")).body.decode()
    assert metric(metrics, "hub_dedupe_store_errors_total") > 0
    assert metric(metrics, "hub_dedupe_store_available") == 0
    ready = await ops_get(hub, "/readyz")
    assert ready.status == 503
    body = ready.json()
    assert body["ready"] is False
    assert body["checks"]["valkey"] != "ok"
    assert body["checks"]["nats"] == "ok"


async def test_valkey_down_answers_fast(make_hub: HubFactory, valkey_server: RunningServer) -> None:
    """Failing open costs little: with Valkey gone, deliveries are still answered well inside a second."""
    hub, secret = await start(make_hub, GITHUB)
    valkey_server.stop()
    for _ in range(3):
        delivery = GITHUB.signed(secret)
        started = time.monotonic()
        reply = await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)
        assert reply.status == 202
        assert time.monotonic() - started < 1.5
    assert await hub.event_count() == 3


async def _async(value: bool) -> bool:
    return value
