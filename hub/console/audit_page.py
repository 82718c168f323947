"""The Audit page: the tenant's audit records (an operator's: every tenant's, or one), newest first,
filtered by action and outcome."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from events.subjects import HUB_WIDE, is_name
from hub.console.call import Call
from hub.console.refusal import Refusal, not_found
from hub.control.auditlog_reader import ACTION, AuditQuery, recent_audit_records

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
MAX_OUTCOME_CHARS = 64


async def audit_page(call: Call) -> web.StreamResponse:
    """GET /console/audit?action=&outcome=&window=&tenant= (tenant: operators only)."""
    query = call.request.query
    action = query.get("action", "").strip()
    if action and not ACTION.fullmatch(action):
        raise Refusal(400, "bad_request", "action is lowercase letters, digits and underscores.", audited=False)
    outcome = query.get("outcome", "").strip()
    if len(outcome) > MAX_OUTCOME_CHARS:
        raise Refusal(400, "bad_request", f"outcome is at most {MAX_OUTCOME_CHARS} characters.", audited=False)
    window = query.get("window", "7d") or "7d"
    if window not in WINDOWS:
        raise Refusal(400, "bad_request", f"window must be one of {', '.join(WINDOWS)}.", audited=False)
    tenant = call.viewer.tenant
    asked = query.get("tenant", "").strip()
    if asked:
        if asked != HUB_WIDE:
            call.viewer.require_tenant(asked)
        elif not call.viewer.is_operator:
            raise not_found("No such tenant.", audited=True)
        if asked != HUB_WIDE and not is_name(asked):
            raise not_found("No such tenant.")
        tenant = asked
    records = await recent_audit_records(
        call.console.js, AuditQuery(tenant, action or None, outcome or None, WINDOWS[window])
    )
    return call.render(
        "audit.html",
        title="Audit",
        records=records,
        action=action,
        outcome=outcome,
        window=window,
        windows=list(WINDOWS),
        tenant=asked,
    )
