"""The policy consumer: events from `HUB_EVENTS` become gated invocations on `HUB_INVOCATIONS`.

For each event: the connector's routes whose type patterns and `when` condition fit, a decision
per route, an invocation for each allowed one and an audit record for each denied one. A route
whose `when` or debounce key exceeds its evaluation budget on the event is denied for it by
`(condition_error)` (hub/gate/conditions.py), so a costly expression never holds the event. The event
is acked only after every one of those publishes is acknowledged; if any fails, the event is
NAKed and redelivered. Every publish carries a `Nats-Msg-Id` derived from the event and the route,
so a redelivery (after a crash or a failed publish) adds nothing that was already published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import nats.errors
import orjson
from faststream.nats import NatsMessage
from nats.js import JetStreamContext

from events.audit import AuditRecord
from events.envelope import headers_to_attributes, rfc3339
from events.journey import JourneyWriter, RouteStep, routed
from events.subjects import audit_subject, invocation_subject
from hub.gate.catalog import CompiledRoute, GateCatalog
from hub.gate.conditions import route_decision
from hub.gate.metrics import GateMetrics
from hub.gate.policy import Decision
from hub.runtime import tracing
from hub.runtime.live import Live
from hub.runtime.settled import all_settled

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
ROUTE_HEADER = "Hub-Route"
RULE_HEADER = "Hub-Policy-Rule"
TRACEPARENT_HEADER = "ce-traceparent"
"""The event's W3C trace context (the envelope's `traceparent` attribute; never percent-encoded)."""
TENANT_HEADER, CONNECTOR_HEADER, ID_HEADER = "ce-hubtenant", "ce-hubconnector", "ce-id"
SEQUENCE_HEADER = "Hub-Event-Sequence"
"""The event's sequence in HUB_EVENTS: the order the hub accepted events in (debounce keeps the latest)."""
RETRY_DELAY_S = 2.0
"""How long a NAKed event waits before its redelivery when a publish failed."""
FAILURE_DELAY_S = 30.0
"""How long an event whose routing raised waits before it is tried again (it is never dropped)."""


class PublishFailed(Exception):
    """At least one invocation or audit publish was not acknowledged."""


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """What the consumer did with one event: each matching route and its decision."""

    event_msg_id: str
    decisions: list[tuple[CompiledRoute, Decision]]


@dataclass(frozen=True, slots=True)
class EventRef:
    """The attributes of an event the consumer needs, read from its `ce-*` headers."""

    tenant: str
    connector: str
    event_id: str
    event_type: str
    msg_id: str

    @classmethod
    def from_message(cls, headers: Mapping[str, str]) -> EventRef | None:
        """The reference, or None when the message is not a hub envelope."""
        attributes = headers_to_attributes(dict(headers))
        try:
            tenant, connector = attributes["hubtenant"], attributes["hubconnector"]
            event_id, event_type = attributes["id"], attributes["type"]
        except KeyError:
            return None
        return cls(tenant, connector, event_id, event_type, headers.get(MSG_ID) or f"{tenant}:{connector}:{event_id}")


def invocation_id(event_msg_id: str, route: str) -> str:
    """`<event's Nats-Msg-Id>:<route>`: the same for every redelivery of the event."""
    return f"{event_msg_id}:{route}"


class PolicyConsumer:
    """Decides and publishes, then acks; one instance per hub process, all sharing one durable consumer."""

    def __init__(
        self,
        catalog: Live[GateCatalog],
        js: JetStreamContext,
        metrics: GateMetrics,
        *,
        publish_timeout_s: float = 5.0,
        journeys: JourneyWriter | None = None,
    ) -> None:
        self._catalog = catalog
        self._js = js
        self._metrics = metrics
        self._timeout_s = publish_timeout_s
        self._journeys = journeys

    async def handle(self, message: NatsMessage) -> None:
        """FastStream handler: ack after every publish is acked, else NAK for a redelivery.

        The handling is the event's `policy` span, a child of the envelope's trace context, and its log
        lines name the event."""
        raw = message.raw_message
        headers = raw.headers or {}
        tenant, connector = headers.get(TENANT_HEADER, ""), headers.get(CONNECTOR_HEADER, "")
        event_id = unquote(headers.get(ID_HEADER, ""))
        with (
            tracing.span("policy", headers.get(TRACEPARENT_HEADER), tenant=tenant, connector=connector) as trace,
            tracing.logged(trace.traceparent, tenant, connector, event_id),
        ):
            trace.set("event_id", event_id)
            await self._handle(message)

    async def _handle(self, message: NatsMessage) -> None:
        raw = message.raw_message
        try:
            await self.route_event(raw.headers or {}, raw.data, sequence=raw.metadata.sequence.stream)
        except PublishFailed as exc:
            log.warning("event not routed; redelivering", extra={"subject": raw.subject, "error": str(exc)})
            self._metrics.events_routed.labels("retried").inc()
            await message.nack(delay=RETRY_DELAY_S)
            return
        except Exception:  # a bug must not stall the event silently: log it, keep the event, retry later
            log.exception("event routing failed; redelivering", extra={"subject": raw.subject})
            self._metrics.events_routed.labels("failed").inc()
            await message.nack(delay=FAILURE_DELAY_S)
            return
        await message.ack()

    async def route_event(
        self, headers: Mapping[str, str], body: bytes, *, sequence: int | None = None, id_suffix: str = ""
    ) -> RoutedEvent | None:
        """Decide every matching route of the event and publish the results; None if it is not routable.

        `id_suffix` is appended to every invocation id (a replay marks its invocations so)."""
        ref = EventRef.from_message(headers)
        if ref is None:
            self._metrics.events_routed.labels("not_a_hub_event").inc()
            return None
        catalog = self._catalog.current  # one version for the whole event, also when specs change meanwhile
        decisions = event_decisions(catalog, ref, body)
        await self._journey(ref, sequence, decisions or [], id_suffix)  # before the invocations: it leads the journey
        if decisions is None:
            self._metrics.events_routed.labels("no_connector").inc()
            return None
        publishes = [
            self._publish(ref, route, decision, headers, body, sequence, id_suffix) for route, decision in decisions
        ]
        results = await all_settled(publishes)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            for failure in failures:
                if not isinstance(failure, nats.errors.Error | TimeoutError):
                    raise failure
            raise PublishFailed(f"{len(failures)} of {len(results)} publishes failed: {type(failures[0]).__name__}")
        for route, decision in decisions:
            self._metrics.decisions.labels(ref.tenant, ref.connector, route.name, decision.effect, decision.rule).inc()
        self._metrics.events_routed.labels("routed" if decisions else "no_route").inc()
        return RoutedEvent(ref.msg_id, decisions)

    async def _journey(
        self, ref: EventRef, sequence: int | None, decisions: list[tuple[CompiledRoute, Decision]], id_suffix: str
    ) -> None:
        """The `routed` record, also with no route: it is the index from the event id to its sequence."""
        if self._journeys is None:
            return
        steps = [
            RouteStep(route.name, d.effect, d.rule, d.reason, invocation_id(ref.msg_id, route.name) + id_suffix)
            for route, d in decisions
        ]
        record = routed(ref.event_id, sequence, ref.event_type, steps)
        await self._journeys.write(ref.tenant, ref.connector, record, msg_id=f"{ref.msg_id}:routed{id_suffix}")

    async def _publish(
        self,
        ref: EventRef,
        route: CompiledRoute,
        decision: Decision,
        headers: Mapping[str, str],
        body: bytes,
        sequence: int | None,
        id_suffix: str,
    ) -> None:
        msg_id = invocation_id(ref.msg_id, route.name) + id_suffix
        if decision.allowed:
            invocation_headers = {k: v for k, v in headers.items() if k.lower().startswith("ce-")}
            invocation_headers |= {
                "Content-Type": headers.get("Content-Type", "application/cloudevents+json"),
                ROUTE_HEADER: route.name,
                RULE_HEADER: decision.rule,
                MSG_ID: msg_id,
            }
            if sequence is not None:
                invocation_headers[SEQUENCE_HEADER] = str(sequence)
            subject = invocation_subject(ref.tenant, ref.connector, route.name)
            await self._js.publish(subject, body, timeout=self._timeout_s, headers=invocation_headers)
            return
        record = AuditRecord(
            tenant=ref.tenant,
            action="policy.deny",
            target=route.spec.target.label,
            outcome="denied",
            time=rfc3339(time.time()),
            detail={
                "connector": ref.connector,
                "route": route.name,
                "eventId": ref.event_id,
                "eventType": ref.event_type,
                "rule": decision.rule,
                "reason": decision.reason,
                "invocationId": msg_id,
            },
        )
        await self._js.publish(
            audit_subject(ref.tenant, "policy"),
            record.to_json(),
            timeout=self._timeout_s,
            headers={MSG_ID: f"{msg_id}:denied", "Content-Type": "application/json"},
        )


def event_decisions(catalog: GateCatalog, ref: EventRef, body: bytes) -> list[tuple[CompiledRoute, Decision]] | None:
    """The connector's routes that match the event, each with the policy's decision; None when the
    catalog has no such connector."""
    connector = catalog.connector(ref.tenant, ref.connector)
    if connector is None:
        return None
    routes = [route for route in connector.routes if route.fits_type(ref.event_type)]
    needs_envelope = any(route.condition is not None or route.debounce_key is not None for route in routes)
    envelope = _parsed(body) if needs_envelope else {}
    policy = catalog.policy(ref.tenant)
    return [
        (route, decision)
        for route in routes
        if (decision := route_decision(policy, route, ref.event_type, envelope)) is not None
    ]


def _parsed(body: bytes) -> Mapping[str, Any]:
    """The envelope as a mapping for JMESPath; an unparsable one matches no condition."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return envelope if isinstance(envelope, dict) else {}
