"""The Event page: one stored event (envelope as pretty JSON, NATS headers, provenance) and its
journey through the gate as a timeline, read by hub/history/events.py's `show_event` with the key's
tenant, as the admin API's `GET .../events/{event}` reads it.

The event id is a path segment the app does not check: `show_event` answers an id that cannot be
stored (or another tenant's event) exactly as a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from events.directget import HistoryUnavailable
from events.journey import ATTEMPT, DEAD_LETTERED, REDRIVEN, REPLAYED, ROUTED, THROTTLED, JourneyRecord
from hub.console.call import Call
from hub.console.refusal import Refusal, not_found
from hub.history.events import NotFound, show_event
from hub.jobs.store import is_job_id

LABELS = {
    ROUTED: "Routed",
    THROTTLED: "Throttled",
    ATTEMPT: "Attempt",
    DEAD_LETTERED: "Dead-lettered",
    REPLAYED: "Replayed",
    REDRIVEN: "Redriven",
}


@dataclass(frozen=True, slots=True)
class TimelineStep:
    """One journey record as the timeline shows it: when, what, and its facts as (label, text)."""

    at: str
    kind: str
    label: str
    facts: list[tuple[str, str]]
    outcome: str | None = None
    """`delivered` or `failed` for an attempt (written out; the colour only repeats it)."""
    link: tuple[str, str] | None = None
    """(text, href) of a related page: the replay job."""
    routes: list[Mapping[str, Any]] = field(default_factory=list)
    """A `routed` record's decisions, one per matching route."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _ms(value: Any) -> str:
    return f"{value} ms" if isinstance(value, int | float) else "unknown"


def timeline_step(record: JourneyRecord) -> TimelineStep:
    """The record's facts for people, by kind; a kind this console does not know shows its fields."""
    f = record.fields
    label = LABELS.get(record.kind, record.kind)
    if record.kind == ROUTED:
        facts = [("type", _text(f.get("type", ""))), ("stored as sequence", _text(f.get("sequence")))]
        routes = [r for r in f.get("routes") or [] if isinstance(r, Mapping)]
        return TimelineStep(record.at, record.kind, label, facts, routes=routes)
    if record.kind == THROTTLED:
        facts = [("route", _text(f.get("route"))), ("reason", _text(f.get("reason"))), ("delay", _ms(f.get("delayMs")))]
        return TimelineStep(record.at, record.kind, label, facts)
    if record.kind == ATTEMPT:
        status = f.get("status")
        facts = [
            ("route", _text(f.get("route"))),
            ("attempt", _text(f.get("attempt"))),
            ("status", _text(status) if status is not None else "no HTTP status (subject target or transport error)"),
            ("latency", _ms(f.get("latencyMs"))),
        ]
        if f.get("outcome") != "delivered":
            facts += [("error class", _text(f.get("errorClass"))), ("error", _text(f.get("error")))]
        outcome = "delivered" if f.get("outcome") == "delivered" else "failed"
        return TimelineStep(record.at, record.kind, f"{label} {_text(f.get('attempt'))}", facts, outcome=outcome)
    if record.kind == DEAD_LETTERED:
        facts = [("route", _text(f.get("route"))), ("class", _text(f.get("class"))), ("error", _text(f.get("error")))]
        return TimelineStep(record.at, record.kind, label, facts)
    if record.kind == REPLAYED:
        job = f.get("job")
        facts = [("mode", _text(f.get("mode"))), ("invocations", _text(f.get("invocations")))]
        link = (f"job {job}", f"/console/jobs/{job}") if isinstance(job, str) and is_job_id(job) else None
        return TimelineStep(record.at, record.kind, label, facts, link=link)
    if record.kind == REDRIVEN:
        facts = [("route", _text(f.get("route"))), ("dead letter", _text(f.get("deadLetterSeq")))]
        return TimelineStep(record.at, record.kind, label, facts)
    return TimelineStep(record.at, record.kind, label, [(k, _text(v)) for k, v in f.items()])


async def event_page(call: Call) -> web.StreamResponse:
    """GET /console/events/{tenant}/{name}/{event}."""
    tenant, name, event_id = call.path("tenant"), call.path("name"), call.path("event")
    try:
        detail = await show_event(call.console.nc, call.viewer.tenant, tenant, name, event_id)
    except NotFound:
        raise not_found("No such event.") from None  # word for word what another tenant's event gets
    except HistoryUnavailable as exc:
        raise Refusal(503, "history_unavailable", str(exc), audited=False) from None
    envelope = detail.envelope
    pretty = envelope if isinstance(envelope, str) else orjson.dumps(envelope, option=orjson.OPT_INDENT_2).decode()
    event_type = envelope.get("type", "") if isinstance(envelope, dict) else ""
    return call.render(
        "event.html",
        title=f"Event {event_id}",
        tenant=tenant,
        connector=name,
        event_id=event_id,
        event_type=event_type,
        detail=detail,
        envelope_json=pretty,
        provenance={k: _text(v) for k, v in detail.provenance.items()},
        steps=[timeline_step(record) for record in detail.journey],
        replay_href="/console/replay?"
        + urlencode({"tenant": tenant, "connector": name, "id": event_id, "mode": "gate"})
        if call.viewer.has("connector.operation.invoke")
        else None,
    )
