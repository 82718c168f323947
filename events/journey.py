"""Journey records: what the gate did with one event, on `hub.journey.<tenant>.<connector>.<event token>`.

Each record is one step: `routed` (the policy consumer's decisions, and the event's sequence in
HUB_EVENTS, so the first record is also the index from an event id to its stored event),
`throttled` (a NAK with a delay), `attempt` (one dispatch), `dead_lettered`. Other parts of the hub
add their own kinds (`replayed`, `redriven`); a reader keeps a kind it does not know as it is.

Records are published with core NATS (`JourneyWriter`), not awaited: the stream stores them, but a
record published while NATS is unreachable is lost. The event, its invocations and dead letters
are the durable facts; a journey is their diagnosis and may have a gap (docs/design.md, "History
and journeys").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client as NATS

from events.envelope import rfc3339
from events.subjects import journey_subject

ROUTED = "routed"
THROTTLED = "throttled"
ATTEMPT = "attempt"
DEAD_LETTERED = "dead_lettered"
REPLAYED = "replayed"
REDRIVEN = "redriven"
KINDS = frozenset({ROUTED, THROTTLED, ATTEMPT, DEAD_LETTERED, REPLAYED, REDRIVEN})
"""The kinds the gate writes; a record of another kind is kept and shown as it is."""

MSG_ID = "Nats-Msg-Id"
ERROR_CHARS = 200
"""An attempt's or a dead letter's error text is cut to this many characters."""


@dataclass(frozen=True, slots=True)
class JourneyRecord:
    """One step of an event's journey: its kind, when (RFC 3339), the event id and the kind's fields."""

    kind: str
    at: str
    event_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """`{"kind", "at", "eventId", ...fields}`."""
        return orjson.dumps({"kind": self.kind, "at": self.at, "eventId": self.event_id, **self.fields})

    @classmethod
    def from_json(cls, data: bytes) -> JourneyRecord:
        """A record; ValueError when the bytes are not one."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ValueError("a journey record is JSON") from None
        if not isinstance(raw, dict):
            raise ValueError("a journey record is a JSON object")
        kind, at, event_id = raw.pop("kind", None), raw.pop("at", None), raw.pop("eventId", None)
        if not (isinstance(kind, str) and isinstance(at, str) and isinstance(event_id, str)):
            raise ValueError("a journey record has a kind, an at and an eventId")
        return cls(kind, at, event_id, raw)

    def as_dict(self) -> dict[str, Any]:
        """The record as the API shows it."""
        return {"kind": self.kind, "at": self.at, "eventId": self.event_id, **self.fields}


def _now() -> str:
    return rfc3339(time.time())


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One matching route of a `routed` record."""

    route: str
    effect: str
    """`allow` or `deny`."""
    rule: str
    reason: str
    invocation_id: str

    def as_dict(self) -> dict[str, str]:
        """The route as the record holds it."""
        return {
            "route": self.route,
            "effect": self.effect,
            "rule": self.rule,
            "reason": self.reason,
            "invocationId": self.invocation_id,
        }


def routed(event_id: str, sequence: int | None, event_type: str, routes: list[RouteStep]) -> JourneyRecord:
    """The policy consumer's decisions for the event (`routes` empty when none matched)."""
    fields = {"sequence": sequence, "type": event_type, "routes": [route.as_dict() for route in routes]}
    return JourneyRecord(ROUTED, _now(), event_id, fields)


def throttled(event_id: str, invocation_id: str, route: str, reason: str, delay_s: float) -> JourneyRecord:
    """The invocation waits `delay_s` (reason `rate`, `concurrency`, `breaker` or `debounce`)."""
    fields = {"invocationId": invocation_id, "route": route, "reason": reason, "delayMs": round(delay_s * 1000, 1)}
    return JourneyRecord(THROTTLED, _now(), event_id, fields)


def attempt(
    event_id: str,
    invocation_id: str,
    route: str,
    *,
    number: int,
    status: int | None,
    latency_ms: float,
    delivered: bool,
    error_class: str | None = None,
    error: str | None = None,
) -> JourneyRecord:
    """One dispatch attempt; `status` None for a subject target or a transport error. `error` must be
    safe to show (the gate's outcomes never hold a URL's query, a header or a secret)."""
    fields: dict[str, Any] = {
        "invocationId": invocation_id,
        "route": route,
        "attempt": number,
        "status": status,
        "latencyMs": round(latency_ms, 1),
        "outcome": "delivered" if delivered else "failed",
    }
    if not delivered:
        fields |= {"errorClass": error_class, "error": (error or "")[:ERROR_CHARS]}
    return JourneyRecord(ATTEMPT, _now(), event_id, fields)


def dead_lettered(event_id: str, invocation_id: str, route: str, failure_class: str, error: str) -> JourneyRecord:
    """The invocation went to HUB_DLQ."""
    fields = {"invocationId": invocation_id, "route": route, "class": failure_class, "error": error[:ERROR_CHARS]}
    return JourneyRecord(DEAD_LETTERED, _now(), event_id, fields)


def replayed(event_id: str, job_id: str, mode: str, invocations: int) -> JourneyRecord:
    """A replay job sent the event again: through the gate (`invocations` made) or to its shadow subject."""
    fields = {"job": job_id, "mode": mode, "invocations": invocations}
    return JourneyRecord(REPLAYED, _now(), event_id, fields)


def redriven(event_id: str, invocation_id: str, route: str, dead_letter_seq: int) -> JourneyRecord:
    """A dead letter of the event was sent to its route again (same invocation id, fresh attempts)."""
    fields = {"invocationId": invocation_id, "route": route, "deadLetterSeq": dead_letter_seq}
    return JourneyRecord(REDRIVEN, _now(), event_id, fields)


class JourneyWriter:
    """Publishes records with core NATS: no PubAck is awaited, so the gate's pace does not change.

    `msg_id`, where given, is the record's `Nats-Msg-Id`, so the record of a redelivered step
    (a routed event NAKed after a failed publish, say) is stored once.
    """

    def __init__(self, nc: NATS) -> None:
        self._nc = nc

    async def write(self, tenant: str, connector: str, record: JourneyRecord, msg_id: str | None = None) -> None:
        """Hand the record to the connection's buffer; when that fails (NATS unreachable, the buffer
        full) the record is dropped: the step itself goes on."""
        headers = {MSG_ID: msg_id} if msg_id is not None else None
        subject = journey_subject(tenant, connector, record.event_id)
        with contextlib.suppress(nats.errors.Error):
            await self._nc.publish(subject, record.to_json(), headers=headers)
