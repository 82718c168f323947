"""Exactly once at the edge: concurrent and repeated copies of one delivery land once in HUB_EVENTS."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.conftest import HubFactory, HubUnderTest, Reply, wait_for
from tests.hub.ingress.signing import GITHUB, TENANT, Provider, SecretSpec, new_secret, provider_param, specs_yaml

pytestmark = pytest.mark.integration

COPIES = 50


async def start(make_hub: HubFactory, provider: Provider, **settings: object) -> tuple[HubUnderTest, str]:
    secret = SecretSpec("k1", f"ONCE_{provider.connector.upper()}_SECRET", new_secret(provider.name))
    hub = await make_hub(specs_yaml(provider.doc([secret])), env={secret.env: secret.value}, **settings)
    return hub, secret.value


async def count_msg_id(hub: HubUnderTest, msg_id: str) -> int:
    return sum(1 for m in await hub.events() if (m.headers or {}).get("Nats-Msg-Id") == msg_id)


def check_concurrent_replies(replies: list[Reply], event_id: str) -> None:
    statuses = Counter(r.status for r in replies)
    assert statuses[202] == 1, statuses
    assert set(statuses) <= {200, 202, 409}, statuses
    for reply in replies:
        body = reply.json()
        if reply.status == 202:
            assert body == {"accepted": 1, "duplicates": 0, "ids": [event_id]}
        elif reply.status == 200:
            assert body == {"accepted": 0, "duplicates": 1, "ids": [event_id]}
        else:
            assert body["error"] == "in_flight", body
            assert int(reply.headers["Retry-After"]) >= 1, reply.headers


@pytest.mark.parametrize("provider", **provider_param())
async def test_concurrent_copies_are_published_once(make_hub: HubFactory, provider: Provider) -> None:
    hub, secret = await start(make_hub, provider)
    path = f"{TENANT}/{provider.connector}"
    delivery = provider.signed(secret)

    replies = await asyncio.gather(*(hub.post(path, delivery.body, delivery.headers) for _ in range(COPIES)))

    check_concurrent_replies(replies, delivery.event_id)
    assert await hub.event_count() == 1
    msg_id = f"{TENANT}:{provider.connector}:{delivery.event_id}"
    assert await count_msg_id(hub, msg_id) == 1

    later = await hub.post(path, delivery.body, delivery.headers)
    assert later.status == 200, later.body
    assert later.json() == {"accepted": 0, "duplicates": 1, "ids": [delivery.event_id]}
    assert await hub.event_count() == 1


@pytest.mark.parametrize("provider", **provider_param())
async def test_a_redelivery_signed_again_later_is_a_duplicate(make_hub: HubFactory, provider: Provider) -> None:
    """Providers re-sign retries (new timestamp, same id): the id, not the signature, is the dedupe key."""
    hub, secret = await start(make_hub, provider)
    path = f"{TENANT}/{provider.connector}"
    first = provider.signed(secret)
    resigned = provider.headers(first.body, secret, event_id=first.event_id, timestamp=int(time.time()) + 5)

    assert (await hub.post(path, first.body, first.headers)).status == 202
    again = await hub.post(path, first.body, resigned)
    assert again.status == 200, again.body
    assert again.json()["ids"] == [first.event_id]
    assert await hub.event_count() == 1


async def test_many_distinct_deliveries_concurrently_all_land(make_hub: HubFactory) -> None:
    """Concurrency does not lose or merge different events: 30 ids in, 30 messages out, each once."""
    hub, secret = await start(make_hub, GITHUB)
    deliveries = [GITHUB.signed(secret) for _ in range(30)]
    copies = [d for d in deliveries for _ in range(3)]

    replies = await asyncio.gather(*(hub.post(f"{TENANT}/gh", d.body, d.headers) for d in copies))

    assert all(r.status in (200, 202, 409) for r in replies), Counter(r.status for r in replies)
    assert sum(r.status == 202 for r in replies) == len(deliveries)
    ids = Counter((m.headers or {})["Nats-Msg-Id"] for m in await hub.events())
    assert ids == Counter(f"{TENANT}:gh:{d.event_id}" for d in deliveries)


async def test_a_crash_between_puback_and_done_is_absorbed_by_jetstream(make_hub: HubFactory) -> None:
    """Another instance published (same Nats-Msg-Id) and died before `done`; its claim expired.
    The sender's retry is claimed afresh, and JetStream recognizes the publish as a duplicate."""
    hub, secret = await start(make_hub, GITHUB)
    delivery = GITHUB.signed(secret)
    msg_id = f"{TENANT}:gh:{delivery.event_id}"
    await hub.js.publish(
        "hub.events.acme.gh.pull_request.opened", b'{"id":"from-the-crashed-instance"}', headers={"Nats-Msg-Id": msg_id}
    )

    retry = await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)

    assert retry.status == 200, retry.body
    assert retry.json() == {"accepted": 0, "duplicates": 1, "ids": [delivery.event_id]}
    assert await count_msg_id(hub, msg_id) == 1
    assert await hub.redis.get(f"dd:{TENANT}:gh:{delivery.event_id}") == b"done"


async def test_a_claim_left_by_a_crashed_request_is_409_until_it_expires(make_hub: HubFactory) -> None:
    hub, secret = await start(make_hub, GITHUB, claim_ttl="1s")
    delivery = GITHUB.signed(secret)
    key = f"dd:{TENANT}:gh:{delivery.event_id}"
    await hub.redis.set(key, "token-of-a-crashed-request", px=1000)

    held = await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)
    assert held.status == 409, held.body
    assert held.json()["error"] == "in_flight"
    assert int(held.headers["Retry-After"]) >= 1
    assert await hub.redis.get(key) == b"token-of-a-crashed-request"  # the 409 did not steal or free it

    statuses: list[int] = []

    async def delivered() -> bool:
        statuses.append((await hub.post(f"{TENANT}/gh", delivery.body, delivery.headers)).status)
        return statuses[-1] == 202

    await wait_for(delivered, timeout=5, what="the crashed request's claim to expire")
    assert set(statuses) <= {409, 202}, statuses
    assert await hub.event_count() == 1
