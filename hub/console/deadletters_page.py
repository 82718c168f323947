"""The Dead letters pages: a filtered, paged listing (newest first), one dead letter with its error
and envelope, and the forms that redrive or discard them.

The forms call the admin API's service functions (hub/history/deadletters.py, hub/jobs/redrive.py)
with its rules: one dead letter is redriven at once, several (selected, or every one matching the
filter) by a `redrive` job whose state this page shows; a tenant key reaches only its tenant's dead
letters, and another tenant's answers exactly as a missing one (404 "No such dead letter.").
Every change is audited as the API audits it (`deadletter_redrive`, `deadletter_discard`).

Sequences are path segments and form fields the app does not check: a malformed one is answered
as an unknown one.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import orjson
from aiohttp import web

from events.deadletter import FailureClass
from hub.console.call import Call, redirect
from hub.console.jobs_page import job_store
from hub.console.refusal import Refusal, invalid, not_found
from hub.history.deadletters import (
    DeadLetterFilter,
    DeadLetterRecord,
    discard,
    get_dead_letter,
    list_dead_letters,
    redrive,
)
from hub.jobs import redrive as redrive_jobs
from hub.jobs.store import Job

PAGE_SIZE = 50
MAX_SELECTED = PAGE_SIZE
"""A page's worth: the checkboxes of one listing."""
ENVELOPE_PREVIEW_BYTES = 64 * 1024
NO_DEAD_LETTER = "No such dead letter."
LISTING = "/console/deadletters"
FILTER_FIELDS = ("tenant", "connector", "route", "class", "since", "until")
_SEQ = re.compile(r"[1-9][0-9]{0,18}")
FACTS = {
    "invocationId": "Invocation",
    "tenant": "Tenant",
    "connector": "Connector",
    "route": "Route",
    "target": "Target",
    "class": "Failure class",
    "attempts": "Attempts",
    "firstAttemptAt": "First attempt at",
    "failedAt": "Failed at",
}
"""The record's fields a dead letter's page lists, with their labels (the error and envelope follow)."""
_JOB = re.compile(r"[0-9a-f]{32}")
NOTICES = {
    "redriven": "The dead letter was sent again to its route as configured now.",
    "discarded": "The dead letters selected were deleted.",
    "job_started": "A redrive job started: its progress is below.",
}
"""What a form's redirect may announce, by code (the page never reflects text from the query)."""


def _filter(call: Call, fields: dict[str, str]) -> DeadLetterFilter:
    """The filter of a query or form: a tenant key's own tenant unless it names one it reaches."""
    given = {k: v.strip() for k, v in fields.items() if k in FILTER_FIELDS and v.strip()}
    if "tenant" in given:
        call.viewer.require_tenant(given["tenant"])
    elif call.viewer.tenant is not None:
        given["tenant"] = call.viewer.tenant
    try:
        return DeadLetterFilter.parse(given)
    except ValueError as exc:
        raise Refusal(400, "bad_request", f"{str(exc)[0].upper()}{str(exc)[1:]}.", audited=False) from None


def _seq(value: str) -> int | None:
    return int(value) if _SEQ.fullmatch(value) else None


async def _visible(call: Call, value: str) -> DeadLetterRecord:
    """The dead letter at sequence `value` if this key reaches its tenant; else 404 as for none."""
    seq = _seq(value)
    letter = await get_dead_letter(call.console.nc, seq) if seq is not None else None
    if letter is None or not call.viewer.reaches(letter.tenant):
        raise not_found(NO_DEAD_LETTER)
    return letter


async def _shown_job(call: Call) -> Job | None:
    """The redrive job a redirect names, if this key may see it (else none is shown)."""
    job_id = call.request.query.get("job", "")
    if not _JOB.fullmatch(job_id):
        return None
    stored = await (await job_store(call)).get(job_id)
    if stored is None or (call.viewer.tenant is not None and stored.job.tenant != call.viewer.tenant):
        return None
    return stored.job


async def deadletters_page(call: Call) -> web.StreamResponse:
    """GET /console/deadletters?tenant=&connector=&route=&class=&since=&until=&before="""
    query = dict(call.request.query)
    where = _filter(call, query)
    before_text = query.get("before", "")
    before = _seq(before_text) if before_text else None
    if before_text and before is None:
        raise Refusal(400, "bad_request", "before must be a sequence number (a whole number from 1).", audited=False)
    page = await list_dead_letters(call.console.nc, where, before=before, limit=PAGE_SIZE)
    shown = {k: v for k, v in query.items() if k in FILTER_FIELDS}
    return call.render(
        "deadletters.html",
        title="Dead letters",
        letters=page.letters,
        filters=shown,
        classes=[c.value for c in FailureClass],
        next_link=f"{LISTING}?{urlencode(shown | {'before': page.next_cursor})}" if page.next_cursor else None,
        first_link=f"{LISTING}?{urlencode(shown)}" if before is not None else None,
        notice=NOTICES.get(call.request.query.get("notice", "")),
        job=await _shown_job(call),
        can_invoke=call.viewer.has("connector.operation.invoke"),
    )


def _pretty(letter: DeadLetterRecord) -> tuple[str, bool]:
    """The envelope, indented when it is JSON, at most ENVELOPE_PREVIEW_BYTES (and whether it was cut)."""
    raw = letter.envelope_bytes()
    try:
        text = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace")
    return text[:ENVELOPE_PREVIEW_BYTES], len(text) > ENVELOPE_PREVIEW_BYTES


async def deadletter_page(call: Call) -> web.StreamResponse:
    """GET /console/deadletters/{seq}"""
    letter = await _visible(call, call.path("seq"))
    envelope, cut = _pretty(letter)
    return call.render(
        "deadletter.html",
        title=f"Dead letter {letter.seq}",
        letter=letter,
        facts=[(label, letter.record.get(name)) for name, label in FACTS.items()],
        envelope=envelope,
        envelope_cut=cut,
        can_invoke=call.viewer.has("connector.operation.invoke"),
    )


async def _redrive_one(call: Call, letter: DeadLetterRecord) -> None:
    await redrive(call.console.nc, letter)
    detail = {"invocationId": letter.invocation_id}
    await call.console.plane.audit.record_by(
        call.actor, letter.tenant, "deadletter_redrive", f"dlq/{letter.seq}", "redriven", detail
    )


async def redrive_one(call: Call) -> web.StreamResponse:
    """POST /console/deadletters/{seq}/redrive"""
    await _redrive_one(call, await _visible(call, call.path("seq")))
    return redirect(f"{LISTING}?notice=redriven")


async def discard_one(call: Call) -> web.StreamResponse:
    """POST /console/deadletters/{seq}/discard"""
    letter = await _visible(call, call.path("seq"))
    await _discard(call, [letter])
    return redirect(f"{LISTING}?notice=discarded")


def _selected(call: Call) -> list[int]:
    """The checked sequences (malformed ones are skipped: they name no dead letter)."""
    assert call.form is not None
    values = [v for v in call.form.getall("seq", []) if isinstance(v, str)]
    seqs = sorted({seq for v in values if (seq := _seq(v)) is not None})
    if not seqs:
        raise invalid("Select at least one dead letter.")
    if len(seqs) > MAX_SELECTED:
        raise invalid(f"Select at most {MAX_SELECTED} dead letters at a time.")
    return seqs


async def redrive_many(call: Call) -> web.StreamResponse:
    """POST /console/deadletters/redrive: the selected ones (`seq` fields), or with `all` every one
    matching the filter fields, as a `redrive` job (one selected: redriven at once)."""
    store = await job_store(call)
    if call.field("all"):
        fields = {name: call.field(name) for name in FILTER_FIELDS}
        job = await redrive_jobs.start_by_filter(store, _filter(call, fields), created_by=call.actor.key_id)
    else:
        seqs = _selected(call)
        if len(seqs) == 1:
            await _redrive_one(call, await _visible(call, str(seqs[0])))
            return redirect(f"{LISTING}?notice=redriven")
        job = await redrive_jobs.start_by_seqs(store, call.viewer.tenant, seqs, created_by=call.actor.key_id)
    await call.console.plane.audit.record_by(
        call.actor, job.tenant, "deadletter_redrive", f"job/{job.id}", "accepted", job.params
    )
    return redirect(f"{LISTING}?{urlencode({'notice': 'job_started', 'job': job.id})}")


async def discard_many(call: Call) -> web.StreamResponse:
    """POST /console/deadletters/discard: the selected ones (another tenant's are skipped, as missing)."""
    found = [await get_dead_letter(call.console.nc, seq) for seq in _selected(call)]
    await _discard(call, [letter for letter in found if letter is not None and call.viewer.reaches(letter.tenant)])
    return redirect(f"{LISTING}?notice=discarded")


async def _discard(call: Call, letters: list[DeadLetterRecord]) -> None:
    for letter in letters:
        if await discard(call.console.nc, letter.seq):
            await call.console.plane.audit.record_by(
                call.actor,
                letter.tenant,
                "deadletter_discard",
                f"dlq/{letter.seq}",
                "discarded",
                {"invocationId": letter.invocation_id},
            )
