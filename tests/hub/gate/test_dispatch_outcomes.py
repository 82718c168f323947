"""Dispatch outcomes end to end: retries, dead letters by failure class, Retry-After, the circuit
breaker, and invocations whose route or permission went away. In-process gate consumers on real
servers, loopback HTTP targets."""

from __future__ import annotations

import logging

import orjson
import pytest

from events.envelope import Envelope
from tests.hub.gate.fixtures import GateFactory, GateUnderTest
from tests.hub.gate.harness import (
    TimedHttpTarget,
    acme_specs,
    dead_letter_messages,
    envelope,
    gate_idle,
    publish_event,
    publish_invocation,
    sample,
    subscribe_target,
    timed_http_target,
    until,
)

pytestmark = pytest.mark.integration

TARGET_LABEL = "http:127.0.0.1"
FAST_RETRY = "{maxAttempts: 5, initial: 100ms, max: 200ms, jitter: false}"


def http_route(target: TimedHttpTarget, *, retry: str = FAST_RETRY, circuit: str = "") -> str:
    circuit_line = f"\n      circuit: {circuit}" if circuit else ""
    return f"""    - name: hook
      match: {{types: ["github.push"]}}
      target: {{http: {{url: "{target.url}/hook", timeout: 2s}}}}
      retry: {retry}{circuit_line}"""


async def push(gate: GateUnderTest, count: int = 1) -> list[Envelope]:
    events = [envelope("acme", "gh", "github.push", data={"n": n}) for n in range(count)]
    for event in events:
        await publish_event(gate.js, event)
    return events


def invocation_id(event: Envelope, route: str = "hook") -> str:
    return f"acme:gh:{event.id}:{route}"


async def idle(gate: GateUnderTest) -> None:
    await until(lambda: gate_idle(gate.js), 15, "both gate consumers idle")


async def test_transient_failures_are_retried_and_delivered_once(make_gate: GateFactory) -> None:
    async with timed_http_target(script=[503, 503]) as target:
        gate = await make_gate(acme_specs(http_route(target)))
        (event,) = await push(gate)
        await until(lambda: 200 in target.statuses, 10, "a 2xx answer")
        await idle(gate)
        assert target.statuses == [503, 503, 200]
        assert target.keys() == [invocation_id(event)] * 3  # one Idempotency-Key for every attempt
        assert await dead_letter_messages(gate.js) == []
        registry = gate.metrics.registry
        labels = {"tenant": "acme", "connector": "gh", "route": "hook"}
        assert sample(registry, "hub_dispatch_retries_total", labels) == 2
        assert sample(registry, "hub_invocations_total", labels | {"outcome": "delivered"}) == 1


async def test_a_4xx_is_dead_lettered_at_once_as_permanent(make_gate: GateFactory) -> None:
    async with timed_http_target(then=400) as target:
        gate = await make_gate(acme_specs(http_route(target)))
        (event,) = await push(gate)
        await until(lambda: dead_letter_messages(gate.js), 10, "a dead letter")
        await idle(gate)
        assert target.statuses == [400]
        ((subject, letter),) = await dead_letter_messages(gate.js)
        assert subject == "hub.dlq.acme.gh.hook"
        assert letter["class"] == "permanent"
        assert letter["attempts"] == 1
        assert letter["error"] == "http 400"
        assert letter["invocationId"] == invocation_id(event)
        assert letter["target"] == TARGET_LABEL
        assert letter["envelope"] == orjson.loads(event.to_json())  # embedded as JSON, not as a string
        assert letter["firstAttemptAt"] is not None


@pytest.mark.parametrize(
    ("status", "max_attempts", "failure_class"),
    [(503, 3, "transient"), (429, 2, "quota_exceeded")],
)
async def test_retries_run_out_into_a_dead_letter(
    make_gate: GateFactory, status: int, max_attempts: int, failure_class: str
) -> None:
    retry = f"{{maxAttempts: {max_attempts}, initial: 50ms, max: 100ms, jitter: false}}"
    async with timed_http_target(then=status) as target:
        gate = await make_gate(acme_specs(http_route(target, retry=retry)))
        (event,) = await push(gate)
        await until(lambda: dead_letter_messages(gate.js), 10, "a dead letter")
        await idle(gate)
        assert target.statuses == [status] * max_attempts
        ((subject, letter),) = await dead_letter_messages(gate.js)
        assert subject == "hub.dlq.acme.gh.hook"
        assert (letter["class"], letter["attempts"], letter["error"]) == (failure_class, max_attempts, f"http {status}")
        assert letter["invocationId"] == invocation_id(event)
        labels = {"tenant": "acme", "connector": "gh", "route": "hook", "class": failure_class}
        assert sample(gate.metrics.registry, "hub_dead_letters_total", labels) == 1


async def test_retry_after_is_honoured(make_gate: GateFactory, caplog: pytest.LogCaptureFixture) -> None:
    async with timed_http_target(script=[503], reply_headers=[{"Retry-After": "2"}]) as target:
        gate = await make_gate(acme_specs(http_route(target)))  # backoff alone would retry after 100ms
        with caplog.at_level(logging.INFO, logger="hub.gate.dispatch_consumer"):
            await push(gate)
            await until(lambda: len(target.statuses) == 2, 10, "the retry")
        assert target.statuses == [503, 200]
        # The delay the gate NAKed with is exactly the target's 2s, not the backoff's 100ms ...
        retries = [r for r in caplog.records if r.getMessage() == "dispatch failed; retrying"]
        assert [(r.attempt, r.delay_s) for r in retries] == [(1, 2.0)]  # type: ignore[attr-defined]
        # ... and the retry came no sooner: a loaded machine only makes the gap longer, so its upper
        # bound is loose (a wrong delay is caught exactly above).
        gap = target.times[1] - target.times[0]
        assert 1.9 <= gap < 8, gap


async def test_the_breaker_opens_holds_off_the_target_then_closes(make_gate: GateFactory) -> None:
    events_count = 5
    retry = "{maxAttempts: 20, initial: 50ms, max: 100ms, jitter: false}"
    async with timed_http_target(script=[503] * events_count) as target:
        route = http_route(target, retry=retry, circuit="{failureThreshold: 3, cooldown: 1s}")
        gate = await make_gate(acme_specs(route))
        registry = gate.metrics.registry
        breaker = {"target": f"http:{target.url}"}  # one breaker per origin: scheme, host and port
        events = await push(gate, events_count)
        await until(lambda: sample(registry, "hub_breaker_open", breaker) == 1, 10, "breaker open")
        await until(lambda: len(target.keys(ok_only=True)) == events_count, 15, "every event delivered")
        await idle(gate)

        assert sample(registry, "hub_breaker_trips_total", breaker) >= 1
        assert sample(registry, "hub_breaker_open", breaker) == 0
        assert sorted(target.keys(ok_only=True)) == sorted(invocation_id(e) for e in events)  # each exactly once
        # After the last 503 the breaker was open: no request for (about) the 1s cooldown, although
        # the backoff alone would have retried after 50ms.
        last_failure = max(t for t, s in zip(target.times, target.statuses, strict=True) if s == 503)
        after = [t - last_failure for t in target.times if t > last_failure]
        assert after, "no request after the failures"
        assert min(after) >= 0.9, after
        # Half-open lets one probe through; only once it succeeded do the others follow.
        first_ok = target.statuses.index(200)
        assert target.statuses[: first_ok + 1] == [503] * events_count + [200]


async def test_an_invocation_for_a_removed_route_is_a_validation_error(make_gate: GateFactory) -> None:
    route = """    - name: deploys
      match: {types: ["github.push"]}
      target: {subject: svc.acme.deploys}"""
    gate = await make_gate(acme_specs(route))
    event = envelope("t", "c", "github.push")
    invocation = await publish_invocation(gate.js, "gone", event)
    await until(lambda: dead_letter_messages(gate.js), 10, "a dead letter")
    await idle(gate)
    ((subject, letter),) = await dead_letter_messages(gate.js)
    assert subject == "hub.dlq.t.c.gone"
    assert letter["class"] == "validation_error"
    assert letter["invocationId"] == invocation
    assert letter["attempts"] == 0
    assert letter["envelope"]["id"] == event.id


async def test_an_invocation_the_policy_now_denies_is_dead_lettered(make_gate: GateFactory) -> None:
    route = """    - name: blocked
      match: {types: ["github.push"]}
      target: {subject: svc.acme.blocked}"""
    deny = "    - {name: no-blocked, effect: deny, routes: [blocked]}"
    gate = await make_gate(acme_specs(route, extra_policy_rules=deny))
    target = await subscribe_target(gate.nc, "svc.acme.blocked")
    event = envelope("acme", "gh", "github.push")
    # As if it had been allowed when the policy consumer routed it, and the policy changed since.
    invocation = await publish_invocation(gate.js, "blocked", event)
    await until(lambda: dead_letter_messages(gate.js), 10, "a dead letter")
    await idle(gate)
    ((subject, letter),) = await dead_letter_messages(gate.js)
    assert subject == "hub.dlq.acme.gh.blocked"
    assert (letter["class"], letter["invocationId"]) == ("policy_denied", invocation)
    assert "no-blocked" in letter["error"]
    assert target.messages == []
