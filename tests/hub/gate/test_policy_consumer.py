"""The policy consumer against real nats-server and valkey-server: events become gated invocations or
audited denials, exactly once per (event, route), also across failed publishes, crashes and processes."""

from __future__ import annotations

from typing import Any

import nats.errors
import orjson
import pytest
import yaml
from nats.js import JetStreamContext
from nats.js.api import PubAck

from events.streams import AUDIT_STREAM, EVENTS_STREAM
from hub.gate.catalog import build_catalog
from hub.gate.consumers import POLICY_DURABLE
from hub.gate.policy_consumer import PolicyConsumer
from hub.runtime.live import Live
from schemas.loader import load_specs
from tests.hub.gate.fixtures import GateFactory, GateUnderTest
from tests.hub.gate.harness import (
    SPEC_APPLIES,
    consumer_caught_up,
    envelope,
    invocations,
    publish_event,
    stream_messages,
    subscribe_target,
    until,
)

pytestmark = pytest.mark.integration


def route(name: str, types: list[str], subject: str | None = None, url: str | None = None, when: str = "") -> Any:
    target = {"http": {"url": url}} if url else {"subject": subject or f"svc.acme.{name}"}
    return {"name": name, "match": {"types": types} | ({"when": when} if when else {}), "target": target}


def connector(*routes: Any, tenant: str = "acme", name: str = "gh") -> Any:
    spec = {"type": "webhook", "provider": "github", "routes": list(routes)}
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": name, "tenant": tenant}, "spec": spec}


def policy(*rules: Any, tenant: str = "acme", subjects: tuple[str, ...] = ("svc.acme",), **spec: Any) -> Any:
    body = {"allowedSubjects": list(subjects), "allowedHosts": ["hooks.example.com"], "rules": list(rules)} | spec
    return {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "p", "tenant": tenant}, "spec": body}


def specs(*documents: Any) -> str:
    return yaml.safe_dump_all(documents)


ALLOW_ALL = {"name": "all", "effect": "allow"}


async def settled(js: JetStreamContext) -> bool:
    """Every event stored so far was delivered to the policy consumer and acked."""
    return await consumer_caught_up(js, EVENTS_STREAM, POLICY_DURABLE)


async def routed(js: JetStreamContext) -> list[tuple[str, str]]:
    """(Hub-Route, event id) of every invocation stored, in order."""
    return [((m.headers or {})["Hub-Route"], orjson.loads(m.data or b"")["id"]) for m in await invocations(js)]


async def audits(js: JetStreamContext) -> list[tuple[str, dict[str, Any]]]:
    """The gate's audit records (the control plane's records of storing the spec files aside)."""
    records = [(m.subject or "", orjson.loads(m.data or b"")) for m in await stream_messages(js, AUDIT_STREAM)]
    return [(subject, record) for subject, record in records if record["action"] not in SPEC_APPLIES]


def metric(gate: GateUnderTest, name: str, **labels: str) -> float:
    return gate.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_allowed_route_becomes_one_invocation_and_a_delivery(make_gate: GateFactory) -> None:
    gate = await make_gate(specs(connector(route("deploys", ["github.push"])), policy(ALLOW_ALL)))
    target = await subscribe_target(gate.nc, "svc.acme.deploys")
    event = envelope("acme", "gh", "github.push", data={"ref": "refs/heads/main", "text": "ünï"})
    await publish_event(gate.js, event)
    await until(lambda: len(target.messages) == 1, 10, "delivery to the subject target")
    stored = await gate.js.get_msg(EVENTS_STREAM, 1)
    (invocation,) = await invocations(gate.js)
    headers = invocation.headers or {}
    assert invocation.subject == "hub.invocations.acme.gh.deploys"
    assert headers["Nats-Msg-Id"] == f"acme:gh:{event.id}:deploys"
    assert headers["Nats-Msg-Id"] == f"{(stored.headers or {})['Nats-Msg-Id']}:deploys"
    event_ce = {k: v for k, v in (stored.headers or {}).items() if k.startswith("ce-")}
    assert {k: v for k, v in headers.items() if k.startswith("ce-")} == event_ce
    assert len(event_ce) >= 9
    assert (headers["Hub-Route"], headers["Hub-Policy-Rule"]) == ("deploys", "all")
    assert invocation.data == stored.data == event.to_json()
    assert target.messages[0].data == event.to_json()
    assert await audits(gate.js) == []
    labels = {"tenant": "acme", "connector": "gh", "route": "deploys", "effect": "allow", "rule": "all"}
    assert metric(gate, "hub_policy_decisions_total", **labels) == 1


async def test_deny_rule_audits_and_invokes_nothing(make_gate: GateFactory) -> None:
    rules = [ALLOW_ALL, {"name": "no-pushes", "effect": "deny", "types": ["github.push"]}]
    gate = await make_gate(specs(connector(route("deploys", ["github.>"])), policy(*rules)), dispatch=False)
    event = envelope("acme", "gh", "github.push")
    await publish_event(gate.js, event)
    await until(lambda: settled(gate.js), 10, "the event acked")
    assert await invocations(gate.js) == []
    ((subject, record),) = await audits(gate.js)
    assert subject == "hub.audit.acme.policy"
    assert (record["tenant"], record["action"], record["outcome"]) == ("acme", "policy.deny", "denied")
    assert record["target"] == "subject:svc.acme.deploys"
    detail = record["detail"]
    assert (detail["rule"], detail["route"], detail["connector"]) == ("no-pushes", "deploys", "gh")
    assert (detail["eventId"], detail["eventType"]) == (event.id, "github.push")
    assert detail["invocationId"] == f"acme:gh:{event.id}:deploys"


@pytest.mark.parametrize("deny_first", [False, True])
async def test_deny_overrides_allow_and_each_route_is_decided(make_gate: GateFactory, deny_first: bool) -> None:
    rules = [ALLOW_ALL, {"name": "block-a", "effect": "deny", "routes": ["a"]}]
    routes = connector(route("a", ["github.push"]), route("b", ["github.*"]))
    gate = await make_gate(specs(routes, policy(*(rules[::-1] if deny_first else rules))), dispatch=False)
    event = envelope("acme", "gh", "github.push")
    await publish_event(gate.js, event)
    await until(lambda: settled(gate.js), 10, "the event acked")
    (invocation,) = await invocations(gate.js)
    assert ((invocation.headers or {})["Hub-Route"], (invocation.headers or {})["Hub-Policy-Rule"]) == ("b", "all")
    ((_, record),) = await audits(gate.js)
    assert (record["detail"]["route"], record["detail"]["rule"]) == ("a", "block-a")


async def test_default_deny_and_a_tenant_without_policy(make_gate: GateFactory) -> None:
    documents = [
        connector(route("x", ["github.push"])),
        connector(route("y", ["github.push"], subject="svc.beta.y"), tenant="beta"),
        policy({"name": "only-other", "effect": "allow", "routes": ["other"]}),
    ]
    gate = await make_gate(specs(*documents), dispatch=False)
    first, second = envelope("acme", "gh", "github.push"), envelope("beta", "gh", "github.push")
    await publish_event(gate.js, first)
    await publish_event(gate.js, second)
    await until(lambda: settled(gate.js), 10, "both events acked")
    assert await invocations(gate.js) == []
    found = sorted((s, r["detail"]["eventId"], r["detail"]["rule"]) for s, r in await audits(gate.js))
    assert found == [
        ("hub.audit.acme.policy", first.id, "(default)"),
        ("hub.audit.beta.policy", second.id, "(no policy)"),
    ]


async def test_targets_outside_the_boundary_are_denied(make_gate: GateFactory) -> None:
    routes = [
        route("cross", ["github.push"], subject="svc.b.x"),
        route("web", ["github.push"], url="http://127.0.0.1:9/hook"),
        route("own", ["github.push"], subject="svc.a.ok"),
    ]
    gate = await make_gate(specs(connector(*routes), policy(ALLOW_ALL, subjects=("svc.a",))), dispatch=False)
    event = envelope("acme", "gh", "github.push")
    await publish_event(gate.js, event)
    await until(lambda: settled(gate.js), 10, "the event acked")
    assert await routed(gate.js) == [("own", event.id)]
    denied = sorted((r["detail"]["route"], r["detail"]["rule"], r["target"]) for _, r in await audits(gate.js))
    assert denied == [("cross", "(boundary)", "subject:svc.b.x"), ("web", "(boundary)", "http:127.0.0.1")]


async def test_wildcards_and_when_select_events(make_gate: GateFactory) -> None:
    routes = [
        route("prs", ["github.pull_request.*"]),
        route("all", ["github.>"]),
        route("main", ["github.push"], when="data.ref == 'refs/heads/main'"),
    ]
    gate = await make_gate(specs(connector(*routes), policy(ALLOW_ALL)), dispatch=False)
    events = {
        "opened": envelope("acme", "gh", "github.pull_request.opened"),
        "bare": envelope("acme", "gh", "github.pull_request"),
        "deep": envelope("acme", "gh", "github.pull_request.a.b"),
        "main": envelope("acme", "gh", "github.push", data={"ref": "refs/heads/main"}),
        "dev": envelope("acme", "gh", "github.push", data={"ref": "refs/heads/dev"}),
        "other": envelope("acme", "gh", "gitlab.push", data={"ref": "refs/heads/main"}),
    }
    for event in events.values():
        await publish_event(gate.js, event)
    await until(lambda: settled(gate.js), 10, "every event acked")
    names = {event.id: name for name, event in events.items()}
    found = sorted((names[event_id], route_name) for route_name, event_id in await routed(gate.js))
    expected = [("opened", "prs"), ("opened", "all"), ("bare", "all"), ("deep", "all"), ("main", "all")]
    assert found == sorted([*expected, ("main", "main"), ("dev", "all")])
    assert await audits(gate.js) == []


async def test_an_event_without_a_route_is_acked_and_produces_nothing(make_gate: GateFactory) -> None:
    gate = await make_gate(specs(connector(route("deploys", ["github.push"])), policy(ALLOW_ALL)), dispatch=False)
    await publish_event(gate.js, envelope("acme", "gh", "github.issues.opened"))
    await publish_event(gate.js, envelope("acme", "unknown", "github.push"))
    await until(lambda: settled(gate.js), 10, "both events acked")
    assert await invocations(gate.js) == []
    assert await audits(gate.js) == []
    assert metric(gate, "hub_policy_events_total", outcome="no_route") == 1
    assert metric(gate, "hub_policy_events_total", outcome="no_connector") == 1


@pytest.mark.parametrize(
    ("when", "data"),
    [("contains(data.labels, 'deploy')", {"ref": "x"}), ("data.amount > `100`", {"amount": "100.00"})],
)
async def test_a_condition_failing_on_an_event_does_not_hold_the_event(
    make_gate: GateFactory, when: str, data: dict[str, Any]
) -> None:
    """A condition that fails on this event's shape (a JMESPath type error: `contains()` of a missing field,
    a string ordered against a number) means the route does not match; the event's other routes are still
    invoked and the event is acked, not redelivered every ack wait for ever."""
    routes = [route("picky", ["github.>"], when=when), route("all", ["github.>"])]
    gate = await make_gate(specs(connector(*routes), policy(ALLOW_ALL)), dispatch=False)
    event = envelope("acme", "gh", "github.push", data=data)
    await publish_event(gate.js, event)
    await until(lambda: settled(gate.js), 10, "the event acked")
    assert await routed(gate.js) == [("all", event.id)]


class FlakyJetStream:
    """The consumer's real JetStream context; the first publish to `fail_subject` times out once, after
    `first_subject`'s publish was acknowledged. Records every acknowledgement."""

    def __init__(self, js: JetStreamContext, first_subject: str = "", fail_subject: str = "") -> None:
        self._js, self._first, self._fail = js, first_subject, fail_subject
        self.acks: list[tuple[str, PubAck]] = []
        self.failed = False

    async def publish(self, subject: str, payload: bytes, **options: Any) -> PubAck:
        if subject == self._fail and not self.failed:
            await until(lambda: any(s == self._first for s, _ in self.acks), 5, "the first publish")
            self.failed = True
            raise nats.errors.TimeoutError
        ack = await self._js.publish(subject, payload, **options)
        self.acks.append((subject, ack))
        return ack


TWO_ROUTES = specs(connector(route("a", ["github.push"]), route("b", ["github.push"])), policy(ALLOW_ALL))


async def test_a_failed_publish_is_retried_without_duplicates(make_gate: GateFactory) -> None:
    gate = await make_gate(TWO_ROUTES, policy=True, dispatch=False)
    assert gate.gate.policy is not None
    flaky = FlakyJetStream(gate.gate.policy._js, "hub.invocations.acme.gh.a", "hub.invocations.acme.gh.b")
    gate.gate.policy._js = flaky  # type: ignore[assignment]
    event = envelope("acme", "gh", "github.push")
    await publish_event(gate.js, event)
    await until(lambda: len(flaky.acks) == 3, 15, "the redelivery to publish both invocations")
    await until(lambda: settled(gate.js), 10, "the event acked")
    assert flaky.failed
    ids = sorted((m.headers or {})["Nats-Msg-Id"] for m in await invocations(gate.js))
    assert ids == [f"acme:gh:{event.id}:a", f"acme:gh:{event.id}:b"]
    acks = [(s.rsplit(".", 1)[1], bool(ack.duplicate)) for s, ack in flaky.acks]
    assert acks[0] == ("a", False)  # the first delivery, before `b` failed
    assert sorted(acks[1:]) == [("a", True), ("b", False)]  # the redelivery: `a` again, a duplicate
    assert metric(gate, "hub_policy_events_total", outcome="retried") == 1
    assert metric(gate, "hub_policy_events_total", outcome="routed") == 1
    for name in ("a", "b"):
        labels = {"tenant": "acme", "connector": "gh", "route": name, "effect": "allow", "rule": "all"}
        assert metric(gate, "hub_policy_decisions_total", **labels) == 1


async def test_publishing_again_after_a_crash_before_the_ack_adds_nothing(make_gate: GateFactory) -> None:
    documents = connector(route("a", ["github.push"]), route("b", ["github.push"]), route("c", ["github.push"]))
    rules = (ALLOW_ALL, {"name": "no-c", "effect": "deny", "routes": ["c"]})
    gate = await make_gate(specs(documents, policy(*rules)), policy=False, dispatch=False)
    recorder = FlakyJetStream(gate.js)
    consumer = PolicyConsumer(Live(build_catalog(load_specs(gate.specs))), recorder, gate.metrics.gate)  # type: ignore[arg-type]
    event = envelope("acme", "gh", "github.push")
    await publish_event(gate.js, event)
    stored = await gate.js.get_msg(EVENTS_STREAM, 1)
    for _ in range(2):
        result = await consumer.route_event(stored.headers or {}, stored.data or b"")
        assert result is not None
        assert [(r.name, d.rule) for r, d in result.decisions] == [("a", "all"), ("b", "all"), ("c", "no-c")]
    first, second = recorder.acks[:3], recorder.acks[3:]
    assert [bool(ack.duplicate) for _, ack in first] == [False] * 3
    assert sorted(s for s, _ in second) == sorted(s for s, _ in first)
    assert [bool(ack.duplicate) for _, ack in second] == [True] * 3
    assert sorted(await routed(gate.js)) == [("a", event.id), ("b", event.id)]
    assert [r["detail"]["route"] for _, r in await audits(gate.js)] == ["c"]


async def test_two_processes_share_the_durable_consumer(make_gate: GateFactory) -> None:
    gates = [await make_gate(TWO_ROUTES, dispatch=False), await make_gate(TWO_ROUTES, dispatch=False)]
    events = [envelope("acme", "gh", "github.push") for _ in range(50)]
    for event in events:
        await publish_event(gates[0].js, event)
    await until(lambda: settled(gates[0].js), 20, "every event acked")
    found = await routed(gates[0].js)
    assert sorted(found) == sorted((name, e.id) for e in events for name in ("a", "b"))
    ids = [(m.headers or {})["Nats-Msg-Id"] for m in await invocations(gates[0].js)]
    assert len(ids) == len(set(ids)) == 100
    assert sum(metric(g, "hub_policy_events_total", outcome="routed") for g in gates) == 50
    assert sum(metric(g, "hub_policy_events_total", outcome="retried") for g in gates) == 0
