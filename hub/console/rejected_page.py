"""The Rejected requests pages: requests the ingress refused and kept (hub/history/rejected.py),
listed newest first; one kept request with its headers (credentials were withheld when it was kept:
only their names are shown) and a bounded, escaped body preview; and "Retry", which re-verifies it
with the connector as served now (after a key was fixed) through the admin API's own functions.

A tenant key reaches only its tenant's kept requests; another tenant's answers exactly as a missing
one (404 "No such rejected request."). Path segments are checked here, not by the app: a malformed
one is answered as an unknown one. The retry audits itself (`rejected_retry`), as for the API.

The retry's answer is rendered at once (not a redirect): it carries the refusal's reason, which a
redirect would have to reflect from the query; a reload asks again, and a second retry of a
recovered request is a `duplicate` that publishes nothing.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from aiohttp import web

from events.directget import HistoryUnavailable
from events.subjects import is_name
from hub.console.call import Call
from hub.console.refusal import Refusal, not_found
from hub.control.served_connector import NotServed, SecretStoreUnavailable, current_connector
from hub.errors import ClaimHeld, PublishUnavailable
from hub.history.rejected import KeptRequest, Query, RetryAudit, RetryResult, list_kept, retry, retry_path, show

PAGE_SIZE = 50
BODY_PREVIEW_CHARS = 4_096
NOT_KEPT = "No such rejected request."
LISTING = "/console/rejected"
MAX_REASON_CHARS = 64
_SEQ = re.compile(r"[1-9][0-9]{0,18}")
MASKED = re.compile(r"sig|hmac|auth|token|secret|key|cookie|password|credential", re.IGNORECASE)
"""Header names whose values the page does not show: a signature is kept for the retry (a MAC reveals
no key) but the console never echoes one, nor anything named like a credential."""
OUTCOMES = {
    "recovered": "Recovered: the request now verifies and its events were published",
    "duplicate": "Duplicate: its events were delivered already; nothing was published again",
    "still_refused": "Still refused",
}


def _unavailable(exc: Exception) -> Refusal:
    return Refusal(503, "history_unavailable", f"The kept requests cannot be read now: {exc}", audited=False)


def _query(call: Call) -> Query:
    """The listing's filters: a tenant key reads its tenant, an operator any tenant (or every one)."""
    params = call.request.query
    tenant = params.get("tenant", "").strip() or None
    if tenant is not None:
        call.viewer.require_tenant(tenant)
        if not is_name(tenant):
            raise not_found("No such tenant.")
    else:
        tenant = call.viewer.tenant
    connector = params.get("connector", "").strip() or None
    if connector is not None and (tenant is None or not is_name(connector)):
        raise Refusal(400, "bad_request", "connector needs a tenant and is a name ([a-z0-9-]).", audited=False)
    reason = params.get("reason", "").strip() or None
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise Refusal(400, "bad_request", f"reason is at most {MAX_REASON_CHARS} characters.", audited=False)
    cursor_text = params.get("cursor", "")
    if cursor_text and not _SEQ.fullmatch(cursor_text):
        raise Refusal(400, "bad_request", "cursor must be a sequence number (a whole number from 1).", audited=False)
    cursor = int(cursor_text) if cursor_text else None
    return Query(tenant=tenant, connector=connector, reason=reason, cursor=cursor, limit=PAGE_SIZE)


async def rejected_page(call: Call) -> web.StreamResponse:
    """GET /console/rejected?tenant=&connector=&reason=&cursor="""
    query = _query(call)
    try:
        page = await list_kept(call.console.nc, query)
    except HistoryUnavailable as exc:
        raise _unavailable(exc) from None
    shown = {k: v for k, v in call.request.query.items() if k in ("tenant", "connector", "reason") and v}
    return call.render(
        "rejected.html",
        title="Rejected requests",
        items=page.items,
        filters=shown,
        next_link=f"{LISTING}?{urlencode(shown | {'cursor': page.next_cursor})}" if page.next_cursor else None,
        first_link=f"{LISTING}?{urlencode(shown)}" if query.cursor is not None else None,
    )


async def _kept(call: Call) -> KeptRequest:
    """The kept request the path names, if this key reaches its tenant; else 404 as for none."""
    tenant, connector, seq = call.path("owner"), call.path("connector"), call.path("seq")
    if not call.viewer.reaches(tenant):
        raise not_found(NOT_KEPT, audited=True)
    if not (is_name(tenant) and is_name(connector) and _SEQ.fullmatch(seq)):
        raise not_found(NOT_KEPT)
    try:
        kept = await show(call.console.nc, tenant, connector, int(seq))
    except HistoryUnavailable as exc:
        raise _unavailable(exc) from None
    if kept is None:
        raise not_found(NOT_KEPT)
    return kept


def _headers(kept: KeptRequest) -> list[tuple[str, str | None]]:
    """The kept headers, a value None where the page must not show it."""
    return [(name, None if MASKED.search(name) else value) for name, value in kept.record.headers]


def _render(call: Call, kept: KeptRequest, result: RetryResult | None = None) -> web.Response:
    record = kept.record
    body = record.body.decode("utf-8", "replace")
    return call.render(
        "rejected_one.html",
        title=f"Rejected request {kept.seq}",
        kept=kept,
        record=record,
        headers=_headers(kept),
        body_preview=body[:BODY_PREVIEW_CHARS],
        body_cut=len(body) > BODY_PREVIEW_CHARS or not record.body_complete,
        result=result,
        outcome=OUTCOMES.get(result.outcome, result.outcome) if result else None,
        can_invoke=call.viewer.has("connector.operation.invoke"),
    )


async def kept_page(call: Call) -> web.StreamResponse:
    """GET /console/rejected/{owner}/{connector}/{seq}"""
    return _render(call, await _kept(call))


async def retry_kept(call: Call) -> web.StreamResponse:
    """POST /console/rejected/{owner}/{connector}/{seq}/retry: recovered, still refused (with the
    reason) or duplicate."""
    kept = await _kept(call)
    console = call.console
    if console.redis is None:
        raise Refusal(503, "unavailable", "This process has no connection to the dedupe store.", audited=False)
    try:
        connector = await current_connector(
            console.plane, console.nc, console.settings, kept.record.tenant, kept.record.connector
        )
    except NotServed as exc:
        problems = [f"{p['field']}: {p['message']}" for p in exc.problems]
        raise Refusal(409, "not_served", f"{exc.message}.", audited=False, problems=problems) from None
    except SecretStoreUnavailable:
        raise Refusal(503, "secret_store_unavailable", "The master key cannot be read.", audited=False) from None
    audit = RetryAudit(console.plane.audit, call.actor.key_id, call.actor.request_id, call.actor.started)
    try:
        async with retry_path(console.nc, console.redis, console.settings) as path:
            result = await retry(path, connector, kept, audit)
    except ClaimHeld:
        message = "A delivery of the same event is in flight: retry later."
        raise Refusal(409, "in_flight", message, audited=False) from None
    except PublishUnavailable:
        message = "The bus or a key server is unavailable: retry later."
        raise Refusal(503, "unavailable", message, audited=False) from None
    return _render(call, kept, result)
