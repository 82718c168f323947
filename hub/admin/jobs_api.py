"""The admin API's operations on jobs, replay and dead letters.

A tenant key sees and acts only on its own tenant's events, dead letters and jobs: another tenant's
job or dead letter is answered exactly as a missing one (404 `not_found`). Job ids and sequences are
path segments the app does not check as names: a malformed one is answered as an unknown one here.
Every action is audited. Redrive of more than one dead letter is a `redrive` job; discard of many is
one call, at most `MAX_DISCARD` at a time (the answer says whether more match).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from nats.aio.client import Client as NATS

from hub.admin.errors import ApiError, bad_request, invalid, not_found
from hub.admin.routes import OPERATION_INVOKE, OPERATION_READ, Call, Endpoint, json_response, read_json
from hub.gate.catalog import GateCatalog, catalog_of
from hub.history.deadletters import (
    MAX_PAGE,
    DeadLetterFilter,
    DeadLetterRecord,
    discard,
    get_dead_letter,
    list_dead_letters,
    redrive,
)
from hub.jobs import redrive as redrive_jobs
from hub.jobs import replay
from hub.jobs.selection import SelectionError
from hub.jobs.store import STATES, Job, JobStore
from schemas.connector import ConnectorDocument

NO_JOB = "no such job"
NO_DEAD_LETTER = "no such dead letter"
DEFAULT_PAGE = 50
MAX_DISCARD = 1000
MAX_SEQS = redrive_jobs.MAX_SEQS


def _nc(call: Call) -> NATS:
    if call.admin.nc is None:
        raise ApiError(503, "bus_unavailable", "this process has no connection to the bus")
    return call.admin.nc


async def _jobs(call: Call) -> JobStore:
    return await call.admin.jobs.get(_nc(call).jetstream(), replicas=call.admin.settings.stream_replicas)


def _own_tenant(call: Call, asked: object) -> str | None:
    """The tenant a body or query names, in the key's reach (a tenant key's own when it names none)."""
    if asked is None:
        return call.principal.tenant
    if not isinstance(asked, str) or not call.principal.reaches(asked):
        raise not_found()
    return asked


async def deployed_catalog(call: Call) -> GateCatalog:
    """The catalog the gate builds, from the spec store (what a dry run decides with)."""
    stored = await call.plane.specs.connectors()
    policies = await call.plane.specs.policies()
    return catalog_of([s.document for s in stored if isinstance(s.document, ConnectorDocument)], policies)


async def start_replay(call: Call) -> web.Response:
    """A dry run (`dryRun: true`), or the replay as a job."""
    body = await read_json(call.request)
    if not isinstance(body, dict):
        raise bad_request("the body is a JSON object")
    selection = body.get("selection", {})
    if isinstance(selection, dict):
        body = body | {"selection": selection | {"tenant": _own_tenant(call, selection.get("tenant"))}}
        body["selection"] = {k: v for k, v in body["selection"].items() if v is not None}
    try:
        request = replay.ReplayRequest.parse({k: v for k, v in body.items() if k != "dryRun"})
    except SelectionError as exc:
        raise invalid(str(exc), [{"field": exc.field}]) from None
    nc = _nc(call)
    if body.get("dryRun") is True:
        return json_response(await replay.dry_run(nc, await deployed_catalog(call), request))
    job = await replay.start(await _jobs(call), request, created_by=call.actor.key_id)
    await call.plane.audit.record_by(
        call.actor, job.tenant, "replay_start", f"job/{job.id}", "accepted", request.params()
    )
    return json_response(job.public(), 202)


async def _visible_job(call: Call) -> Job:
    stored = await (await _jobs(call)).get(call.path("job"))
    if stored is None or (call.principal.tenant is not None and stored.job.tenant != call.principal.tenant):
        raise not_found(NO_JOB)
    return stored.job


async def list_jobs(call: Call) -> web.Response:
    """The jobs the key can see, newest first; `?state=`, `?kind=`."""
    state, kind = call.request.query.get("state"), call.request.query.get("kind")
    if state is not None and state not in STATES:
        raise invalid(f"state is one of {', '.join(STATES)}", [{"field": "state"}])
    jobs = [
        s.job
        for s in await (await _jobs(call)).all()
        if (call.principal.tenant is None or s.job.tenant == call.principal.tenant)
        and (state is None or s.job.state == state)
        and (kind is None or s.job.kind == kind)
    ]
    return json_response({"jobs": [job.public() for job in jobs]})


async def get_job(call: Call) -> web.Response:
    """One job with its progress."""
    return json_response((await _visible_job(call)).public())


async def cancel_job(call: Call) -> web.Response:
    """Ask a job to stop (a pending one stops at once, a running one between batches)."""
    job = await _visible_job(call)
    canceled = await (await _jobs(call)).request_cancel(job.id)
    if canceled is None:
        raise not_found(NO_JOB)
    await call.plane.audit.record_by(
        call.actor, job.tenant, "job_cancel", f"job/{job.id}", "requested", {"kind": job.kind}
    )
    return json_response(canceled.public(), 202)


def _filter(call: Call, fields: dict[str, Any]) -> DeadLetterFilter:
    fields = fields | {"tenant": _own_tenant(call, fields.get("tenant"))}
    try:
        return DeadLetterFilter.parse({k: v for k, v in fields.items() if v is not None})
    except ValueError as exc:
        raise invalid(str(exc), [{"field": str(exc).split()[0]}]) from None


def _int(value: object, field: str, *, low: int = 1, high: int | None = None) -> int:
    try:
        number = int(str(value)) if isinstance(value, int | str) and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bounds = f"{low}-{high}" if high is not None else f"at least {low}"
        raise invalid(f"{field} must be a whole number, {bounds}", [{"field": field}])
    return number


async def list_deadletters(call: Call) -> web.Response:
    """Dead letters, newest first: `?tenant&connector&route&class&since&until&cursor&limit`."""
    query = dict(call.request.query)
    limit = _int(query.pop("limit", DEFAULT_PAGE), "limit", high=MAX_PAGE)
    cursor = query.pop("cursor", None)
    before = _int(cursor, "cursor") if cursor is not None else None
    where = _filter(call, query)
    page = await list_dead_letters(_nc(call), where, before=before, limit=limit)
    return json_response({"deadLetters": [d.summary() for d in page.letters], "nextCursor": page.next_cursor})


async def _visible_letter(call: Call, seq: object, tenant: str | None = None) -> DeadLetterRecord:
    if not isinstance(seq, int | str) or isinstance(seq, bool) or not str(seq).isdigit() or int(seq) < 1:
        raise not_found(NO_DEAD_LETTER)
    letter = await get_dead_letter(_nc(call), int(seq))
    if letter is None or not call.principal.reaches(letter.tenant) or (tenant is not None and letter.tenant != tenant):
        raise not_found(NO_DEAD_LETTER)
    return letter


async def get_deadletter(call: Call) -> web.Response:
    """One dead letter, its envelope included."""
    return json_response((await _visible_letter(call, call.path("seq"), call.path("tenant"))).to_dict())


def _seqs(body: dict[str, Any], high: int) -> list[int]:
    seqs = body.get("seqs")
    if not isinstance(seqs, list) or not seqs or len(seqs) > high:
        raise invalid(f"seqs is a list of 1-{high} sequences", [{"field": "seqs"}])
    return sorted({_int(seq, "seqs") for seq in seqs})


def _one_of(body: Any) -> str:
    if not isinstance(body, dict):
        raise bad_request("the body is a JSON object")
    given = [key for key in ("seq", "seqs", "filter") if key in body]
    if len(given) != 1:
        raise invalid("send one of seq, seqs or filter", [{"field": "seq"}])
    return given[0]


async def redrive_deadletters(call: Call) -> web.Response:
    """`{"seq": n}` at once; `{"seqs": [...]}` or `{"filter": {...}}` as a `redrive` job."""
    body = await read_json(call.request)
    which = _one_of(body)
    if which == "seq":
        letter = await _visible_letter(call, body["seq"])
        msg_id = await redrive(_nc(call), letter)
        await call.plane.audit.record_by(
            call.actor,
            letter.tenant,
            "deadletter_redrive",
            f"dlq/{letter.seq}",
            "redriven",
            {"invocationId": letter.invocation_id},
        )
        return json_response({"redriven": letter.seq, "invocationId": letter.invocation_id, "messageId": msg_id})
    store = await _jobs(call)
    if which == "seqs":
        job = await redrive_jobs.start_by_seqs(
            store, call.principal.tenant, _seqs(body, MAX_SEQS), created_by=call.actor.key_id
        )
    else:
        if not isinstance(body["filter"], dict):
            raise invalid("filter is a JSON object", [{"field": "filter"}])
        job = await redrive_jobs.start_by_filter(store, _filter(call, body["filter"]), created_by=call.actor.key_id)
    await call.plane.audit.record_by(
        call.actor, job.tenant, "deadletter_redrive", f"job/{job.id}", "accepted", job.params
    )
    return json_response(job.public(), 202)


async def discard_deadletters(call: Call) -> web.Response:
    """Delete dead letters: `{"seq"}`, `{"seqs"}` or `{"filter", "limit"}`, at most MAX_DISCARD per call."""
    body = await read_json(call.request)
    which = _one_of(body)
    nc = _nc(call)
    if which == "seq":
        letters = [await _visible_letter(call, body["seq"])]
        more = False
    elif which == "seqs":
        found = [await get_dead_letter(nc, seq) for seq in _seqs(body, MAX_DISCARD)]
        letters = [letter for letter in found if letter is not None and call.principal.reaches(letter.tenant)]
        more = False
    else:
        if not isinstance(body["filter"], dict):
            raise invalid("filter is a JSON object", [{"field": "filter"}])
        limit = _int(body.get("limit", MAX_DISCARD), "limit", high=MAX_DISCARD)
        page = await list_dead_letters(nc, _filter(call, body["filter"]), before=None, limit=limit)
        letters, more = page.letters, page.next_cursor is not None
    discarded = [letter for letter in letters if await discard(nc, letter.seq)]
    for letter in discarded:
        await call.plane.audit.record_by(
            call.actor,
            letter.tenant,
            "deadletter_discard",
            f"dlq/{letter.seq}",
            "discarded",
            {"invocationId": letter.invocation_id},
        )
    return json_response({"discarded": [letter.seq for letter in discarded], "more": more})


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/v1/replays", start_replay, OPERATION_INVOKE, "Replay stored events (or a dry run)", "replay"),
    Endpoint("GET", "/v1/jobs", list_jobs, OPERATION_READ, "List jobs", "listJobs"),
    Endpoint("GET", "/v1/jobs/{job}", get_job, OPERATION_READ, "A job and its progress", "getJob"),
    Endpoint("POST", "/v1/jobs/{job}:cancel", cancel_job, OPERATION_INVOKE, "Cancel a job", "cancelJob"),
    Endpoint("GET", "/v1/deadletters", list_deadletters, OPERATION_READ, "List dead letters", "listDeadLetters"),
    Endpoint(
        "GET", "/v1/deadletters/{tenant}/{seq}", get_deadletter, OPERATION_READ, "One dead letter", "getDeadLetter"
    ),
    Endpoint(
        "POST",
        "/v1/deadletters:redrive",
        redrive_deadletters,
        OPERATION_INVOKE,
        "Redrive dead letters to their routes as configured now",
        "redriveDeadLetters",
    ),
    Endpoint(
        "POST",
        "/v1/deadletters:discard",
        discard_deadletters,
        OPERATION_INVOKE,
        "Delete dead letters",
        "discardDeadLetters",
    ),
)
