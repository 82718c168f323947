"""Valkey goes away in the middle of a rate-limited burst: dispatch pauses (fails closed, without
NAKing in a loop or dead-lettering), then resumes on the same port and delivers everything once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from events.streams import ensure_streams
from hub.app.config import load_configuration
from hub.app.connections import connect_nats, connect_redis
from hub.app.embedded import RunningServer, start_valkey
from hub.app.metrics import HubMetrics
from hub.gate.consumers import DISPATCH_DURABLE, start_gate
from hub.runtime.live import Live
from hub.settings import Settings
from tests.hub.gate.fixtures import GateUnderTest
from tests.hub.gate.harness import (
    dead_letter_messages,
    envelope,
    gate_idle,
    publish_event,
    sample,
    subscribe_target,
    until,
)

pytestmark = pytest.mark.integration

SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: UNUSED}}]
  routes:
    - name: limited
      match: {types: ["github.push"]}
      target: {subject: svc.acme.outage}
      limits: {rate: {perSecond: 10, burst: 5}}
    - name: debounced
      match: {types: ["github.issues"]}
      target: {subject: svc.acme.debounced}
      debounce: {key: "data.key", window: 1s}
---
apiVersion: hub/v1
kind: Policy
metadata: {name: default, tenant: acme}
spec:
  allowedSubjects: [svc.acme]
  rules:
    - {name: all, effect: allow}
"""

STORE_AVAILABLE = "hub_limiter_store_available"
OBSERVATION_S = 2.0


@pytest.fixture
async def outage_gate(
    nats_server: RunningServer, own_servers: list[RunningServer], tmp_path: Path
) -> AsyncIterator[GateUnderTest]:
    """In-process gate consumers on a Valkey of the test's own (`own_servers[0]`), which it may stop
    and restart; the gate is stopped before `own_servers` stops the Valkey servers."""
    valkey = start_valkey(tmp_path / "outage-valkey")
    own_servers.append(valkey)
    specs = tmp_path / "specs.yaml"
    specs.write_text(SPECS)
    settings = Settings(nats_url=nats_server.url, redis_url=valkey.url, connectors=specs, data_dir=tmp_path)
    catalog = load_configuration(settings, roles=("policy", "dispatch")).catalog
    nc = await connect_nats(nats_server.url)
    redis = connect_redis(valkey.url, settings.store_timeout.total_seconds())
    gate = None
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.stream_settings())
        metrics = HubMetrics()
        gate = await start_gate(nats_server.url, nc, redis, Live(catalog), metrics.gate, policy=True, dispatch=True)
        yield GateUnderTest(nc, js, redis, gate, metrics, nats_server.url, valkey.url, specs)
    finally:
        if gate is not None:
            await gate.stop()
        await nc.close()
        await redis.aclose()


async def test_dispatch_pauses_while_valkey_is_down_and_resumes_exactly_once(
    outage_gate: GateUnderTest, own_servers: list[RunningServer]
) -> None:
    gate = outage_gate
    registry = gate.metrics.registry
    valkey = own_servers[0]
    target = await subscribe_target(gate.nc, "svc.acme.outage")
    events = [envelope("acme", "gh", "github.push", data={"n": n}) for n in range(30)]
    for event in events:
        await publish_event(gate.js, event)

    await until(lambda: len(target.messages) >= 5, 10, "the first deliveries")
    await asyncio.to_thread(valkey.stop)  # the gate keeps running on this loop meanwhile
    await until(lambda: sample(registry, STORE_AVAILABLE) == 0, 10, "the limiter store marked unavailable")
    paused_at = len(target.messages)
    waiting = len(events) - paused_at
    assert waiting > 0, "everything was delivered before Valkey went away: the outage tested nothing"
    before = await gate.js.consumer_info("HUB_INVOCATIONS", DISPATCH_DURABLE)

    # A bounded observation window, the one deliberate wait here: the point is that nothing happens
    # while Valkey is down (no delivery, no dead letter, no redelivery storm), so there is no event
    # to wait for.
    await asyncio.sleep(OBSERVATION_S)

    after = await gate.js.consumer_info("HUB_INVOCATIONS", DISPATCH_DURABLE)
    assert len(target.messages) == paused_at, "delivered while the limiter store was down (failing open)"
    assert await dead_letter_messages(gate.js) == []
    assert sample(registry, STORE_AVAILABLE) == 0
    # Each waiting invocation may be delivered once more in the window (a rate delay NAKed before the
    # outage runs out, or its first delivery), then its handler waits for Valkey holding it. A NAK
    # loop would redeliver each of them again and again.
    redelivered = after.delivered.consumer_seq - before.delivered.consumer_seq
    assert redelivered <= waiting, f"{redelivered} deliveries of {waiting} waiting invocations in {OBSERVATION_S}s"
    assert after.num_ack_pending + after.num_pending == waiting  # none acked, none lost

    own_servers.append(await asyncio.to_thread(start_valkey, valkey.data_dir, port=valkey.port))
    await until(lambda: len(target.messages) >= len(events), 20, "every event delivered after the restart")
    await until(lambda: gate_idle(gate.js), 10, "both gate consumers idle")

    assert sorted(target.ids()) == sorted(e.id for e in events)  # all of them, none twice
    assert await dead_letter_messages(gate.js) == []
    assert sample(registry, STORE_AVAILABLE) == 1


async def test_a_debounce_window_lost_with_valkey_loses_no_event(
    outage_gate: GateUnderTest, own_servers: list[RunningServer]
) -> None:
    """Followers are acked only after their window fired: a Valkey restart (no persistence) inside
    the window makes them arrive again, and the latest event is still delivered, once."""
    gate = outage_gate
    registry = gate.metrics.registry
    valkey = own_servers[0]
    target = await subscribe_target(gate.nc, "svc.acme.debounced")
    events = [envelope("acme", "gh", "github.issues", data={"key": "k", "n": n}) for n in range(5)]
    for event in events:
        await publish_event(gate.js, event)
    debounce_waits = {"reason": "debounce"}
    await until(
        lambda: (sample(registry, "hub_throttle_delay_seconds_count", debounce_waits) or 0) >= len(events),
        10,
        "every event folded into the window",
    )
    await asyncio.to_thread(valkey.stop)
    own_servers.append(await asyncio.to_thread(start_valkey, valkey.data_dir, port=valkey.port))

    await until(lambda: target.messages, 15, "the debounced delivery")
    await until(lambda: gate_idle(gate.js), 15, "both gate consumers idle")
    (message,) = target.messages
    body = orjson.loads(message.data)
    assert body["id"] == events[-1].id  # the latest event survived the lost window
    assert body["hubcoalesced"] == str(len(events))
    assert await dead_letter_messages(gate.js) == []
