"""A delivery answered 503 during a NATS outage is stored at most once, whenever its sender retries.

Two ways it could land twice, both closed: nats-py sending, after the reconnect, publishes it held while
the server was away (the hub answered 503 for them long before), and a publish the server stored but
never acknowledged. A retry within JetStream's duplicate window is dropped by the stream; one after it
finds the stored copy (hub.ingest.landed) and is answered as a duplicate.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter

import pytest

from events.envelope import Envelope
from events.subjects import event_subject
from hub.app.embedded import RunningServer, start_nats
from hub.ingest.dedupe import unsure_key
from tests.conftest import HubFactory, HubUnderTest, wait_for
from tests.hub.ingress.signing import GITHUB, TENANT, Delivery, SecretSpec, new_secret, specs_yaml

pytestmark = pytest.mark.integration

WINDOW_S = 6.0
"""The JetStream duplicate window of these tests: short, so a retry can come after it."""
SETTINGS = {"publish_timeout": "1s", "claim_ttl": "2s", "duplicate_window": f"{WINDOW_S:.0f}s"}


async def github_hub(make_hub: HubFactory) -> tuple[HubUnderTest, str]:
    secret = SecretSpec("k1", "OUTAGE_GH_SECRET", new_secret("github"))
    doc = GITHUB.doc([secret], replayWindow="2s")
    hub = await make_hub(specs_yaml(doc), env={secret.env: secret.value}, **SETTINGS)
    return hub, secret.value


async def stored_ids(hub: HubUnderTest) -> Counter[str]:
    return Counter((m.headers or {}).get("Nats-Msg-Id", "") for m in await hub.events())


async def after_the_window(since: float) -> None:
    """Let JetStream's duplicate window pass: what is tested is a retry that comes later than it."""
    await asyncio.sleep(max(0.0, since + WINDOW_S + 1.0 - time.time()))


async def test_a_burst_cut_by_a_killed_nats_server_is_stored_once_per_delivery_after_late_retries(
    own_servers: list[RunningServer], make_hub: HubFactory, nats_server: RunningServer
) -> None:
    hub, secret = await github_hub(make_hub)
    deliveries = [GITHUB.signed(secret) for _ in range(60)]
    path = f"{TENANT}/gh"

    async def send(delivery: Delivery, pause_s: float) -> int:
        await asyncio.sleep(pause_s)  # spread the burst over the moment of the kill
        return (await hub.post(path, delivery.body, delivery.headers)).status

    burst = [asyncio.create_task(send(d, n * 0.005)) for n, d in enumerate(deliveries)]
    await asyncio.sleep(0.1)
    os.kill(nats_server.pid, signal.SIGKILL)
    statuses = await asyncio.gather(*burst)
    nats_server.stop()
    assert 503 in statuses, statuses  # the kill cut the burst
    own_servers.append(start_nats(nats_server.data_dir, port=nats_server.port))
    await wait_for(lambda: _async(hub.nc.is_connected), timeout=15, what="the hub to reconnect to NATS")

    await after_the_window(time.time())  # counted from the reconnect, when held publishes would be sent
    retries = [(await hub.post(path, d.body, d.headers)).status for d in deliveries]

    assert all(status in (200, 202) for status in retries), retries
    stored = await stored_ids(hub)
    expected = {f"{TENANT}:gh:{d.event_id}" for d in deliveries}
    assert set(stored) == expected
    assert [msg_id for msg_id, count in stored.items() if count > 1] == []


async def test_a_publish_stored_without_its_puback_is_found_by_a_retry_after_the_window(
    make_hub: HubFactory,
) -> None:
    """The server stored the event but its PubAck never came: the sender was answered 503. Its retry,
    after JetStream has forgotten the id, must find the stored copy instead of storing a second."""
    hub, secret = await github_hub(make_hub)
    delivery = GITHUB.signed(secret)
    msg_id = f"{TENANT}:gh:{delivery.event_id}"
    failed_at = time.time()
    envelope = Envelope(
        id=delivery.event_id,
        source=f"hub://{TENANT}/gh",
        type="github.push",
        time="2026-01-01T00:00:00.000Z",
        hubtenant=TENANT,
        hubconnector="gh",
        hubprovider="github",
        hubreceivedat="2026-01-01T00:00:00.000Z",
        hubverified="hmac-sha256",
        hubbodysha256="0" * 64,
    )
    subject = event_subject(TENANT, "gh", GITHUB.expected_type)
    await hub.js.publish(subject, envelope.to_json(), headers={"Nats-Msg-Id": msg_id})
    key = f"dd:{TENANT}:gh:{delivery.event_id}"
    await hub.redis.set(unsure_key(key), f"{failed_at:.3f}", px=60_000)  # what the 503 left behind

    await after_the_window(failed_at)
    reply = await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)

    assert reply.status == 200, reply.body  # a duplicate: stored before
    assert (await stored_ids(hub))[msg_id] == 1
    assert await hub.redis.get(key) == b"done"


async def test_a_retry_within_the_window_reads_nothing_and_lands_once(make_hub: HubFactory) -> None:
    """Within the window JetStream itself drops a second copy: the stream is not read at all."""
    hub, secret = await github_hub(make_hub)
    delivery = GITHUB.signed(secret)
    key = f"dd:{TENANT}:gh:{delivery.event_id}"
    await hub.redis.set(unsure_key(key), f"{time.time():.3f}", px=60_000)

    reply = await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)

    assert reply.status == 202, reply.body
    assert (await stored_ids(hub))[f"{TENANT}:gh:{delivery.event_id}"] == 1


async def _async(value: bool) -> bool:
    return value
