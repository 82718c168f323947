"""Limits end to end: a route's rate and concurrency cap shared by two `connector-hub run` processes,
and debounce. Real nats-server and valkey-server, loopback targets."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client as NATS

from events.envelope import Envelope
from hub.app.connections import connect_nats
from hub.app.embedded import RunningServer
from tests.hub.gate.fixtures import GateFactory, GateUnderTest
from tests.hub.gate.harness import (
    HubProcess,
    acme_specs,
    envelope,
    gate_idle,
    http_target,
    hub_metric,
    publish_event,
    sample,
    start_hub_process,
    subscribe_target,
    until,
    wait_until_consuming,
)

pytestmark = pytest.mark.integration

LIMITED = """    - name: limited
      match: {types: ["github.push"]}
"""

HubStarter = Callable[[str, int], list[HubProcess]]


def specs(route: str) -> str:
    """`acme/gh` with one route `limited` taking github.push; `route` is the rest of its YAML."""
    return acme_specs(LIMITED + route)


@pytest.fixture
def hub_processes(nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path) -> Iterator[HubStarter]:
    """Start `connector-hub run --role policy,dispatch` processes on the test's servers; each is
    stopped by its PID at teardown, also when the test failed."""
    started: list[HubProcess] = []

    def start(specs_yaml: str, count: int) -> list[HubProcess]:
        path = tmp_path / "specs.yaml"
        path.write_text(specs_yaml)
        for n in range(count):
            started.append(start_hub_process(path, nats_server.url, valkey_server.url, tmp_path / f"hub-{n}"))
        return started

    try:
        yield start
    finally:
        for process in started:
            process.stop()


async def client(nats_server: RunningServer) -> NATS:
    """The test's own connection (the hub processes create the streams and consumers)."""
    return await connect_nats(nats_server.url)


async def assert_both_worked(processes: list[HubProcess], count: int) -> None:
    """Each process delivered some of the invocations (else the limit was not shared by two)."""
    labels = {"tenant": "acme", "connector": "gh", "route": "limited", "outcome": "delivered"}
    delivered = [await hub_metric(process, "hub_invocations_total", labels) for process in processes]
    assert sum(delivered) == count, delivered
    assert all(delivered), delivered


def push_events(count: int) -> list[Envelope]:
    return [envelope("acme", "gh", "github.push", data={"n": n}) for n in range(count)]


async def test_rate_is_shared_by_two_hub_processes(hub_processes: HubStarter, nats_server: RunningServer) -> None:
    per_second, burst, count = 5, 10, 60
    route = f"""      target: {{subject: svc.acme.rate}}
      limits: {{rate: {{perSecond: {per_second}, burst: {burst}}}}}"""
    processes = hub_processes(specs(route), 2)
    nc = await client(nats_server)
    try:
        js = nc.jetstream()
        await wait_until_consuming(js, processes, 30)
        target = await subscribe_target(nc, "svc.acme.rate")
        events = push_events(count)
        for event in events:
            await publish_event(js, event)
        await until(lambda: len(target.messages) >= count, 30, f"{count} deliveries")
        await until(lambda: gate_idle(js), 10, "both gate consumers idle")

        assert sorted(target.ids()) == sorted(e.id for e in events)  # all, and none twice
        first = target.times[0]
        for k, delivered_at in enumerate(target.times, start=1):
            t = delivered_at - first
            # GCRA: `burst` at once, then one every 1/perSecond; one slot of tolerance for clock granularity.
            assert k <= burst + per_second * t + 1, f"delivery {k} came {t:.3f}s after the first: over the rate"
        # Not much slower than the limit either: at least 80 % of it.
        last = target.times[-1] - first
        assert last <= (count - burst) / per_second / 0.8, f"the {count}th delivery took {last:.2f}s"
        await assert_both_worked(processes, count)
    finally:
        await nc.close()


async def test_max_parallel_is_shared_by_two_hub_processes(
    hub_processes: HubStarter, nats_server: RunningServer
) -> None:
    count = 20
    async with http_target(delay_s=0.3) as target:
        route = f"""      target: {{http: {{url: "{target.url}/slow", timeout: 5s}}}}
      limits: {{maxParallel: 3}}"""
        processes = hub_processes(specs(route), 2)
        nc = await client(nats_server)
        try:
            js = nc.jetstream()
            await wait_until_consuming(js, processes, 30)
            events = push_events(count)
            for event in events:
                await publish_event(js, event)
            await until(lambda: len(target.requests) >= count, 30, f"{count} requests")
            await until(lambda: gate_idle(js), 10, "both gate consumers idle")
            keys = [headers["Idempotency-Key"] for headers, _ in target.requests]
            assert sorted(keys) == sorted(f"acme:gh:{e.id}:limited" for e in events)  # each once
            assert target.max_concurrent == 3  # never more, and the cap was reached
            await assert_both_worked(processes, count)
        finally:
            await nc.close()


DEBOUNCED = """      target: {subject: svc.acme.debounced}
      debounce: {key: "data.key", window: 1s}"""


def delivered_body(message: object) -> dict[str, object]:
    return orjson.loads(message.data)  # type: ignore[attr-defined]


async def quiet(gate: GateUnderTest) -> None:
    await until(lambda: gate_idle(gate.js), 10, "both gate consumers idle")


async def test_debounce_fires_once_with_the_latest_event(make_gate: GateFactory) -> None:
    gate = await make_gate(specs(DEBOUNCED))
    target = await subscribe_target(gate.nc, "svc.acme.debounced")
    registry = gate.metrics.registry
    coalesced = {"tenant": "acme", "connector": "gh", "route": "limited", "outcome": "coalesced"}
    events = [envelope("acme", "gh", "github.push", data={"key": "k1", "n": n}) for n in range(20)]
    started = time.monotonic()
    for event in events:  # in this order into HUB_EVENTS; concurrent handlers may see them in any order
        await publish_event(gate.js, event)
    await until(lambda: target.messages, 10, "the debounced delivery")
    await quiet(gate)

    (message,) = target.messages
    assert target.times[0] - started >= 0.9  # not before the window is over
    body = delivered_body(message)
    latest = orjson.loads(events[-1].to_json())
    assert (body["id"], body["data"]) == (latest["id"], latest["data"])
    assert body["hubcoalesced"] == "20"
    assert message.headers is not None
    assert message.headers["ce-hubcoalesced"] == "20"
    assert message.headers["ce-id"] == latest["id"]
    assert sample(registry, "hub_invocations_total", coalesced) == 19


async def test_debounce_keys_apart_and_null_keys_not_debounced(make_gate: GateFactory) -> None:
    gate = await make_gate(specs(DEBOUNCED))
    target = await subscribe_target(gate.nc, "svc.acme.debounced")
    by_key = {key: [envelope("acme", "gh", "github.push", data={"key": key, "n": n}) for n in range(5)] for key in "ab"}
    unkeyed = [envelope("acme", "gh", "github.push", data={"key": None, "n": n}) for n in range(3)]
    unkeyed.append(envelope("acme", "gh", "github.push", data={"n": 3}))
    for event in [*by_key["a"], *by_key["b"], *unkeyed]:
        await publish_event(gate.js, event)
    await until(lambda: len(target.messages) >= 2 + len(unkeyed), 10, "the deliveries")
    await quiet(gate)

    bodies = [delivered_body(m) for m in target.messages]
    keyed = [b for b in bodies if "hubcoalesced" in b]
    assert Counter(b["data"]["key"] for b in keyed) == {"a": 1, "b": 1}  # type: ignore[index]
    for body in keyed:
        assert body["hubcoalesced"] == "5"
        assert body["id"] in {e.id for e in by_key[body["data"]["key"]]}  # type: ignore[index]
    individual = sorted(b["id"] for b in bodies if "hubcoalesced" not in b)
    assert individual == sorted(e.id for e in unkeyed)  # each on its own, none coalesced
    assert len(bodies) == 2 + len(unkeyed)


TENANT_LIMITED = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: UNUSED}}]
  routes:
    - {name: pushes, match: {types: ["github.push"]}, target: {subject: svc.acme.tenant-limited}}
    - name: issues
      match: {types: ["github.issues"]}
      target: {subject: svc.acme.tenant-limited}
      limits: {rate: {perSecond: 100, burst: 100}}
---
apiVersion: hub/v1
kind: Policy
metadata: {name: default, tenant: acme}
spec:
  allowedSubjects: [svc.acme]
  limits: {rate: {perSecond: 4, burst: 2}}
  rules:
    - {name: all, effect: allow}
"""


async def test_the_tenant_limit_of_the_policy_applies_on_top_of_each_route(make_gate: GateFactory) -> None:
    """Limits nest: the tenant-wide rate governs both routes together, whatever their own limits."""
    per_second, burst = 4, 2
    gate = await make_gate(TENANT_LIMITED)
    target = await subscribe_target(gate.nc, "svc.acme.tenant-limited")
    events = [
        envelope("acme", "gh", kind, data={"n": n}) for n in range(5) for kind in ("github.push", "github.issues")
    ]
    for event in events:
        await publish_event(gate.js, event)
    await until(lambda: len(target.messages) == len(events), 10, "every event delivered")
    await quiet(gate)

    assert sorted(target.ids()) == sorted(e.id for e in events)
    first = target.times[0]
    for k, at in enumerate(target.times, start=1):
        assert k <= burst + per_second * (at - first) + 1, (k, at - first)
    slowest = (len(events) - burst) / per_second / 0.8
    assert target.times[-1] - first <= slowest
