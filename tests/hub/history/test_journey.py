"""Journeys written by the in-process gate on real servers: an event through allow, deny, throttling,
retries and a dead letter, read back with `show_event`; an event the gate has not routed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from events.journey import JourneyRecord
from events.streams import EVENTS_STREAM
from hub.history.events import EventDetail, EventQuery, list_events, show_event
from tests.hub.gate.fixtures import GateFactory
from tests.hub.gate.harness import (
    acme_specs,
    envelope,
    gate_idle,
    publish_event,
    stream_messages,
    subscribe_target,
    timed_http_target,
    until,
)

pytestmark = pytest.mark.integration

DENY_AUDIT = "    - {name: no-audit, effect: deny, routes: [audit]}"


def routes(url: str) -> str:
    return f"""    - name: hook
      match: {{types: ["github.push"]}}
      target: {{http: {{url: "{url}/hook?token=s3cret", timeout: 2s}}}}
      retry: {{maxAttempts: 2, initial: 50ms, max: 100ms, jitter: false}}
    - name: audit
      match: {{types: ["github.push"]}}
      target: {{subject: svc.acme.audit}}
    - name: paced
      match: {{types: ["github.push"]}}
      target: {{subject: svc.acme.paced}}
      limits: {{rate: {{perSecond: 2, burst: 1}}}}"""


def of(detail: EventDetail, kind: str, route: str | None = None) -> list[dict[str, Any]]:
    return [r.as_dict() for r in detail.journey if r.kind == kind and (route is None or r.fields.get("route") == route)]


async def test_an_event_journey_through_allow_deny_throttling_retries_and_a_dead_letter(
    make_gate: GateFactory,
) -> None:
    async with timed_http_target(then=503) as target:
        gate = await make_gate(acme_specs(routes(target.url), extra_policy_rules=DENY_AUDIT))
        paced = await subscribe_target(gate.nc, "svc.acme.paced")
        first, second = envelope("acme", "gh", "github.push"), envelope("acme", "gh", "github.push")
        await publish_event(gate.js, first)
        await publish_event(gate.js, second)
        await until(lambda: len(paced.messages) == 2, 15, "both paced deliveries")
        await until(lambda: gate_idle(gate.js), 15, "the gate idle")

        journeys: dict[str, EventDetail] = {}

        async def complete() -> bool:
            for event in (first, second):
                journeys[event.id] = await show_event(gate.nc, "acme", "acme", "gh", event.id)
            return all(of(d, "dead_lettered") and of(d, "attempt", "paced") for d in journeys.values())

        await until(complete, 10, "every journey record stored")

    stored = {m.headers["ce-id"]: m.seq for m in await stream_messages(gate.js, EVENTS_STREAM) if m.headers}
    for event in (first, second):
        detail = journeys[event.id]
        assert detail.sequence == stored[event.id]
        assert detail.envelope["id"] == event.id
        assert detail.provenance["hubtenant"] == "acme"
        assert detail.provenance["hubverified"] == "hmac-sha256"
        assert detail.journey_note is None
        assert detail.journey[0].kind == "routed"
        (routed,) = of(detail, "routed")
        assert routed["sequence"] == stored[event.id]
        assert routed["type"] == "github.push"
        decisions = {r["route"]: (r["effect"], r["rule"], r["invocationId"]) for r in routed["routes"]}
        assert decisions == {
            "hook": ("allow", "all", f"acme:gh:{event.id}:hook"),
            "audit": ("deny", "no-audit", f"acme:gh:{event.id}:audit"),
            "paced": ("allow", "all", f"acme:gh:{event.id}:paced"),
        }
        attempts = of(detail, "attempt", "hook")
        assert [(a["attempt"], a["status"], a["outcome"], a["errorClass"]) for a in attempts] == [
            (1, 503, "failed", "http_status"),
            (2, 503, "failed", "http_status"),
        ]
        assert all("s3cret" not in str(record.as_dict()) for record in detail.journey)
        (letter,) = of(detail, "dead_lettered")
        assert letter["route"] == "hook"
        assert letter["class"] == "transient"
        assert letter["error"] == "http 503"
        assert [r.as_dict() for r in detail.dead_letters] == [letter]
        (delivered,) = of(detail, "attempt", "paced")
        assert delivered["outcome"] == "delivered"
        assert delivered["status"] is None
        assert not of(detail, "attempt", "audit")
        assert _ordered(
            detail.journey, lambda r: r.fields.get("route") == "hook", ["attempt", "attempt", "dead_lettered"]
        )
    throttled = of(journeys[first.id], "throttled", "paced") + of(journeys[second.id], "throttled", "paced")
    assert throttled
    assert {t["reason"] for t in throttled} == {"rate"}
    assert all(t["delayMs"] > 0 for t in throttled)


def _ordered(journey: list[JourneyRecord], pick: Callable[[JourneyRecord], bool], kinds: list[str]) -> bool:
    return [record.kind for record in journey if pick(record) and record.kind != "throttled"] == kinds


async def test_every_routed_event_is_indexed_even_without_a_matching_route(make_gate: GateFactory) -> None:
    gate = await make_gate(
        acme_specs("    - {name: only-push, match: {types: [github.push]}, target: {subject: svc.acme.x}}")
    )
    unmatched = envelope("acme", "gh", "github.issues.opened")
    await publish_event(gate.js, unmatched)
    await until(lambda: gate_idle(gate.js), 15, "the gate idle")

    async def routed() -> bool:
        return bool((await show_event(gate.nc, None, "acme", "gh", unmatched.id)).journey)

    await until(routed, 10, "the routed record stored")
    detail = await show_event(gate.nc, None, "acme", "gh", unmatched.id)
    assert [(r.kind, r.fields["routes"], r.fields["sequence"]) for r in detail.journey] == [("routed", [], 1)]
    by_id = EventQuery(tenant="acme", connector="gh", event_id=unmatched.id)
    assert [item.sequence for item in (await list_events(gate.nc, "acme", by_id)).items] == [1]
    other_type = dataclasses.replace(by_id, type_glob="github.push")
    assert (await list_events(gate.nc, "acme", other_type)).items == []


async def test_an_event_the_gate_has_not_routed_is_found_and_says_so(make_gate: GateFactory) -> None:
    gate = await make_gate(
        acme_specs("    - {name: r, match: {types: [x]}, target: {subject: svc.acme.x}}"), policy=False
    )
    subscriber = await subscribe_target(gate.nc, "svc.acme.x")
    others = [envelope("acme", "gh", "github.push") for _ in range(30)]
    event = envelope("acme", "gh", "github.push", event_id="wanted/1 with spaces")
    for each in [*others[:10], event, *others[10:]]:
        await publish_event(gate.js, each)
    detail = await show_event(gate.nc, "acme", "acme", "gh", event.id)
    assert detail.envelope["id"] == event.id
    assert detail.sequence == 11
    assert detail.journey == []
    assert detail.journey_note is not None
    assert "not routed" in detail.journey_note
    assert not subscriber.messages
