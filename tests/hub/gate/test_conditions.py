"""A route expression over its evaluation budget is a `(condition_error)` decision (hub/gate/conditions.py):
the route is denied for that event, the decision is audited and counted, and nothing raises, so the
policy consumer acks the event instead of redelivering it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import yaml
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry

from hub import cli
from hub.gate.catalog import CompiledRoute, ConditionError, catalog_of, compile_route
from hub.gate.conditions import CONDITION_ERROR, route_decision
from hub.gate.metrics import GateMetrics
from hub.gate.policy import DEFAULT, decide
from hub.gate.policy_consumer import PolicyConsumer
from hub.runtime.live import Live
from schemas.connector import ConnectorDocument, Route
from schemas.policy import PolicyDocument, PolicySpec

LITERAL_100 = "`[" + ",".join(["0"] * 100) + "]`"
COSTLY = f"{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?`false`]]]]"
"""Within the shape limits (validation admits it), 100**4 filter steps: minutes with plain jmespath."""
COSTLY_KEY = "length(to_string(" + "|".join(["[" + ",".join(["@"] * 50) + "]"] * 4) + "))"
"""A debounce key serializing 50**4 copies of the envelope."""
QUICK_S = 1.0
EVENT = {"type": "github.push", "hubtenant": "acme", "data": {"ref": "refs/heads/main", "repo": "acme/app"}}
ALLOW = PolicySpec.model_validate({"allowedSubjects": ["svc.acme"], "rules": [{"name": "all", "effect": "allow"}]})
DENY = PolicySpec.model_validate({"allowedSubjects": ["svc.acme"], "default": "deny"})


def route(name: str = "r", *, when: str | None = None, key: str | None = None) -> CompiledRoute:
    spec: dict[str, Any] = {
        "name": name,
        "match": {"types": ["github.>"], "when": when},
        "target": {"subject": f"svc.acme.{name}"},
    }
    if key is not None:
        spec["debounce"] = {"key": key, "window": "1s"}
    return compile_route("acme", "gh", "github", Route.model_validate(spec))  # validated: within the shape limits


def judged(route: CompiledRoute, policy: PolicySpec = ALLOW) -> Any:
    started = time.monotonic()
    decision = route_decision(policy, route, "github.push", EVENT)
    assert time.monotonic() - started < QUICK_S
    return decision


def test_a_costly_condition_raises_condition_error_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ConditionError, match=r"^match\.when exceeded its evaluation budget: evaluation cost more"):
        route(when=COSTLY).fits_condition(EVENT)
    assert time.monotonic() - started < QUICK_S


def test_a_costly_condition_is_a_condition_error_denial() -> None:
    decision = judged(route(when=COSTLY))
    assert (decision.allowed, decision.rule) == (False, CONDITION_ERROR)
    assert decision.reason.startswith("condition_error: match.when exceeded its evaluation budget")


def test_a_costly_debounce_key_is_a_condition_error_denial_when_the_route_is_allowed() -> None:
    costly = route(key=COSTLY_KEY)
    decision = judged(costly)
    assert (decision.allowed, decision.rule) == (False, CONDITION_ERROR)
    assert decision.reason.startswith("condition_error: debounce.key exceeded its evaluation budget")
    assert judged(costly, DENY).rule == DEFAULT  # denied anyway: the key is never needed, never evaluated
    assert costly.debounce_value(EVENT) is None  # the dispatcher's view: not debounced, no exception


def test_ordinary_routes_are_decided_as_before() -> None:
    assert judged(route(when="data.ref == 'refs/heads/main'", key="data.repo")) == decide(ALLOW, route(), "github.push")
    assert judged(route(when="data.ref == 'refs/heads/dev'")) is None  # not the route's event
    assert judged(route(when="contains(data.missing, 'x')")) is None  # fails on this event: not the route's
    assert route(key="data.repo").debounce_value(EVENT, strict=True) == '"acme/app"'


class RecordingJetStream:
    """Acknowledges every publish and records it."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    async def publish(self, subject: str, payload: bytes, **options: Any) -> None:
        self.published.append((subject, payload, options.get("headers") or {}))


def connector(*routes: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "type": "webhook",
        "provider": "github",
        "secrets": [{"secretRef": {"source": "env", "name": "NOT_NEEDED"}}],
        "routes": list(routes),
    }
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": "gh", "tenant": "acme"}, "spec": spec}


def policy() -> dict[str, Any]:
    spec = {"allowedSubjects": ["svc.acme"], "rules": [{"name": "all", "effect": "allow"}]}
    return {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "p", "tenant": "acme"}, "spec": spec}


def connector_document(*routes: dict[str, Any]) -> ConnectorDocument:
    return ConnectorDocument.model_validate(connector(*routes))


def policy_document() -> PolicyDocument:
    return PolicyDocument.model_validate(policy())


async def test_the_policy_consumer_audits_and_counts_the_condition_error_and_routes_the_rest() -> None:
    routes = [
        {"name": "costly", "match": {"types": ["github.push"], "when": COSTLY}, "target": {"subject": "svc.acme.a"}},
        {"name": "plain", "match": {"types": ["github.push"]}, "target": {"subject": "svc.acme.b"}},
    ]
    js = RecordingJetStream()
    registry = CollectorRegistry()
    catalog = Live(catalog_of([connector_document(*routes)], [policy_document()]))
    consumer = PolicyConsumer(catalog, cast(JetStreamContext, js), GateMetrics(registry))
    headers = {"ce-id": "e1", "ce-type": "github.push", "ce-hubtenant": "acme", "ce-hubconnector": "gh"}

    started = time.monotonic()
    routed = await consumer.route_event(headers, orjson.dumps(EVENT))
    assert time.monotonic() - started < QUICK_S

    assert routed is not None
    assert [(r.name, d.rule) for r, d in routed.decisions] == [("costly", CONDITION_ERROR), ("plain", "all")]
    subjects = sorted(subject for subject, _, _ in js.published)
    assert subjects == ["hub.audit.acme.policy", "hub.invocations.acme.gh.plain"]
    (audit,) = [orjson.loads(payload) for subject, payload, _ in js.published if subject.startswith("hub.audit")]
    assert (audit["action"], audit["outcome"], audit["detail"]["route"]) == ("policy.deny", "denied", "costly")
    assert audit["detail"]["rule"] == CONDITION_ERROR
    assert audit["detail"]["reason"].startswith("condition_error: match.when exceeded its evaluation budget")
    labels = {"tenant": "acme", "connector": "gh", "route": "costly", "effect": "deny", "rule": CONDITION_ERROR}
    assert registry.get_sample_value("hub_policy_decisions_total", labels) == 1


def test_explain_shows_the_condition_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    costly = {"name": "costly", "match": {"types": ["github.>"], "when": COSTLY}, "target": {"subject": "svc.acme.a"}}
    specs = tmp_path / "specs.yaml"
    specs.write_text(yaml.safe_dump_all([connector(costly), policy()]))
    event = tmp_path / "event.json"
    event.write_text(json.dumps(EVENT))
    argv = ["policy", "explain", "--connectors", str(specs), "--connector", "acme/gh", "--event", str(event)]
    assert cli.main(argv) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("route costly -> subject:svc.acme.a: matched (type github.push fits [github.>], but an")
    assert f"DENIED by {CONDITION_ERROR}: condition_error: match.when exceeded its evaluation budget" in line
