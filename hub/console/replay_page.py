"""The Replay page: choose stored events (tenant for operators, connector, type glob, time range, one
event id) and a mode (through the gate, or to the shadow subject), see the dry run (how many events,
and for the gate the policy's decisions per route), then confirm: a POST that starts the replay job
and leads to its page. The key's recent jobs are listed under the form.

It calls what the admin API's `POST /v1/replays` calls (hub/jobs/replay.py: `dry_run`, `start`), with
the key's tenant as the selection's, and writes the same `replay_start` audit record. A time typed as
a duration (`2h`) is fixed to an absolute time by the dry run, so the confirmed replay takes exactly
the events the dry run counted (none stored after the job starts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web

from events.directget import HistoryUnavailable
from events.envelope import rfc3339
from hub.console.call import Call, redirect
from hub.console.events_page import asked_tenant
from hub.console.jobs_page import job_store
from hub.console.refusal import Refusal, invalid
from hub.console.selection import SelectionFields, typed_values
from hub.gate.catalog import GateCatalog, catalog_of
from hub.history.events import HistoryError, parse_time
from hub.jobs import replay
from hub.jobs.selection import SelectionError
from hub.jobs.store import Job
from schemas.connector import ConnectorDocument

MAX_FIELD_CHARS = 512
RECENT_JOBS = 20
MODE_LABELS = {
    "gate": "through the gate (current routes and policy)",
    "subject": "to the shadow subject (hub.replay.<tenant>.<connector>.<type>)",
}


@dataclass(frozen=True, slots=True)
class ReplayForm(SelectionFields):
    """The form's fields as typed ('' when empty)."""

    mode: str = "gate"

    @classmethod
    def of(cls, source: Mapping[str, Any]) -> ReplayForm:
        """From a query string or a posted form; values cut to MAX_FIELD_CHARS."""
        values = typed_values(source, (f.name for f in fields(cls)), MAX_FIELD_CHARS)
        return cls(**values | {"mode": values["mode"] or "gate"})


def _moment(name: str, text: str) -> str | None:
    """An RFC 3339 time or a duration back from now, as an absolute RFC 3339 time."""
    if not text:
        return None
    try:
        return rfc3339(parse_time(name, text))
    except HistoryError as exc:
        raise SelectionError(name, str(exc)) from None


def replay_request(call: Call, form: ReplayForm) -> replay.ReplayRequest:
    """The request the form describes, the selection held to the key's tenant; SelectionError naming
    the wrong field."""
    tenant = asked_tenant(call, form.tenant) or call.viewer.tenant
    selection = {
        "tenant": tenant,
        "connector": form.connector,
        "type": form.type,
        "since": _moment("since", form.since),
        "until": _moment("until", form.until),
        "eventId": form.id,
    }
    body = {"selection": {k: v for k, v in selection.items() if v}, "mode": form.mode}
    return replay.ReplayRequest.parse(body)


async def deployed_catalog(call: Call) -> GateCatalog:
    """The catalog the gate builds from the spec store: what a dry run decides with (as the API's)."""
    stored = await call.console.plane.specs.connectors()
    policies = await call.console.plane.specs.policies()
    return catalog_of([s.document for s in stored if isinstance(s.document, ConnectorDocument)], policies)


def confirm_fields(request: replay.ReplayRequest) -> dict[str, str]:
    """The confirm form's hidden fields: the dry run's selection, times absolute."""
    selection = request.selection.to_dict()
    names = {"eventId": "id"}
    return {names.get(k, k): v for k, v in selection.items()} | {"mode": request.mode}


async def visible_jobs(call: Call) -> list[Job] | None:
    """The key's newest jobs (an operator's: every tenant's); None without the read scope."""
    if not call.viewer.has("connector.operation.read"):
        return None
    jobs = [s.job for s in await (await job_store(call)).all()]
    mine = [job for job in jobs if call.viewer.is_operator or job.tenant == call.viewer.tenant]
    return mine[:RECENT_JOBS]


async def replay_page(call: Call) -> web.StreamResponse:
    """GET /console/replay: the form; with `mode` in the query, the dry run and the confirm form too."""
    query = call.request.query
    form = ReplayForm.of(query)
    values: dict[str, Any] = {"title": "Replay", "form": form, "modes": MODE_LABELS, "error": None, "invalid": None}
    values |= {"dry": None, "confirm": None}
    status = 200
    if "mode" in query:
        try:
            request = replay_request(call, form)
            values["dry"] = await replay.dry_run(call.console.nc, await deployed_catalog(call), request)
            values["confirm"] = confirm_fields(request)
        except SelectionError as exc:
            values |= {"error": str(exc), "invalid": {"eventId": "id"}.get(exc.field, exc.field)}
            status = 422
        except HistoryUnavailable as exc:
            raise Refusal(503, "history_unavailable", str(exc), audited=False) from None
    values["jobs"] = await visible_jobs(call)
    return call.render("replay.html", status, **values)


async def start_replay(call: Call) -> web.StreamResponse:
    """POST /console/replay: the confirmed replay as a job (audited `replay_start`), then its page."""
    form = ReplayForm.of(call.form or {})
    try:
        request = replay_request(call, form)
    except SelectionError as exc:
        raise invalid("The replay's selection is not valid: run the dry run again.", [f"{exc.field}: {exc}"]) from None
    job = await replay.start(await job_store(call), request, created_by=call.actor.key_id)
    await call.console.plane.audit.record_by(
        call.actor, job.tenant, "replay_start", f"job/{job.id}", "accepted", request.params()
    )
    return redirect(f"/console/jobs/{job.id}?notice=replay_started")
