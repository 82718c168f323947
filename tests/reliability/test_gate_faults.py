"""Routed scenarios: every event goes to a loopback HTTP target that applies each `Idempotency-Key`
once. A hub killed between dispatch and ack (the target applies once), and a poison invocation among
good ones (the good ones delivered, the poison one dead-lettered once)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import nats
import orjson
import pytest

from events.streams import DLQ_STREAM
from hub.app.embedded import RunningServer
from tests.conftest import wait_for
from tests.hub.gate.harness import gate_idle, serving, stream_messages
from tests.reliability.checker import OK, Verdict, assert_sound, classify, stored_msg_ids
from tests.reliability.faults import burst_with_fault, senders_for
from tests.reliability.hubs import hubs, kill
from tests.reliability.ledger import Ledger
from tests.reliability.senders import STRIPE, burst
from tests.reliability.target import IdempotentTarget

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROLES = "ingress,policy,dispatch"
SETTLE_TIMEOUT_S = 90.0
"""The gate redelivers an invocation whose handler died after its 30 s ack wait (hub/gate/consumers.py)."""


async def settled(nats_url: str, ledger: Ledger, target: IdempotentTarget, name: str) -> Verdict:
    """Wait until the gate has settled everything stored, then classify against the target and the DLQ."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await wait_for(lambda: gate_idle(js), SETTLE_TIMEOUT_S, "the gate idle: every event and invocation acked")
        stored = await stored_msg_ids(js)
        letters = [orjson.loads(m.data or b"") for m in await stream_messages(js, DLQ_STREAM)]
    finally:
        await nc.close()
    dead = Counter(letter["envelope"]["id"] for letter in letters)
    return classify(name, ledger, stored, target.applied_per_event(), dead)


@pytest.mark.reliability
async def test_hub_killed_between_dispatch_and_ack(
    nats_server: RunningServer,
    valkey_server: RunningServer,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    async with serving(IdempotentTarget(hold_first=True)) as target:
        with hubs(tmp_path / "hubs", nats_server.url, valkey_server.url, target_url=target.url) as hub_set:
            first = await hub_set.start(ROLES)
            senders = senders_for(hub_set, ledger, session)

            async def kill_while_the_target_holds_its_answer() -> None:
                await asyncio.wait_for(target.held.wait(), 30)
                kill(first)  # the target applied the invocation; the hub dies before its answer, before the ack
                target.release.set()
                await hub_set.start(ROLES)

            await burst_with_fault(senders, ledger, 120, 0.01, kill_while_the_target_holds_its_answer)
            verdict = await settled(nats_server.url, ledger, target, "hub killed between dispatch and ack")

    assert_sound(verdict, ledger, least_ok=40)
    (held_key, _), *_ = target.received
    assert [key for key, _ in target.received].count(held_key) >= 2  # dispatched again after the kill
    assert list(target.applied).count(held_key) == 1


async def test_a_poison_invocation_among_good_ones_is_dead_lettered_once(
    nats_server: RunningServer,
    valkey_server: RunningServer,
    tmp_path: Path,
    ledger: Ledger,
    session: aiohttp.ClientSession,
) -> None:
    async with serving(IdempotentTarget()) as target:
        with hubs(tmp_path / "hubs", nats_server.url, valkey_server.url, target_url=target.url) as hub_set:
            await hub_set.start(ROLES)
            senders = senders_for(hub_set, ledger, session)
            stripe = next(sender for sender in senders if sender.profile is STRIPE)
            poison = stripe.new_delivery()
            target.refuse.add(poison.delivery_id)
            accepted = await asyncio.gather(burst(senders, 150, 0.005), stripe.deliver(poison))
            assert accepted[1] is True
            verdict = await settled(nats_server.url, ledger, target, "poison invocation among good ones")

    assert_sound(verdict, ledger, least_ok=151)
    assert verdict.classes[poison.delivery_id] == OK  # stored once, dead-lettered once
    assert poison.delivery_id not in target.applied_per_event()
    assert sorted(target.applied_per_event().values()) == [1] * 150
