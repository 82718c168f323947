"""The Retention page (operators): what `connector-hub retention` and `GET /v1/retention` report,
each stream's configured age and byte cap beside its current size, and how long a deleted connector
stays restorable. The streams hold every tenant's records, so a tenant key is refused, as by the API."""

from __future__ import annotations

from aiohttp import web

from hub.console.call import Call
from hub.console.refusal import Refusal
from hub.control.retention import retention_report


async def retention_page(call: Call) -> web.StreamResponse:
    """GET /console/retention."""
    if not call.viewer.is_operator:
        raise Refusal(403, "operator_only", "Stream retention spans every tenant: only an operator key reads it.")
    console = call.console
    report = await retention_report(console.nc, console.settings, console.plane.trash)
    return call.render("retention.html", title="Retention", report=report)
