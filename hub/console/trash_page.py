"""Deleting a connector from the console (a confirmation page, then a POST) and the Deleted page:
the connectors in the trash the key can see, each restorable until its retention ends.

Both go through the control plane's functions the admin API uses (`delete_connector` without
purge, `restore_connector`), so each change is audited there exactly as from the API."""

from __future__ import annotations

from aiohttp import web

from hub.console.call import Call, redirect
from hub.console.refusal import Refusal, invalid, not_found
from hub.control.apikeys import SCOPES
from hub.control.plane import RestoreConflict
from hub.control.specstore import RevisionConflict
from schemas.connector import ConnectorDocument
from schemas.durations import format_duration

CATALOG_READ, INSTANCE_MANAGE, OPERATION_INVOKE, OPERATION_READ, CREDENTIAL_MANAGE = SCOPES
NOTICES = {"deleted": "The connector is deleted: senders now get 404. It is listed here until its retention ends."}
"""What a form's redirect may announce, by code (the page never reflects text from the query)."""


async def trash_page(call: Call) -> web.StreamResponse:
    """GET /console/deleted: a tenant key's own tenant's deleted connectors, an operator's every tenant's."""
    retention = call.console.settings.deleted_retention
    entries = await call.console.plane.trash.entries(call.viewer.tenant)
    return call.render(
        "trash.html",
        title="Deleted connectors",
        deleted=[entry.to_dict(retention) for entry in entries],
        retention=format_duration(retention),
        can_restore=call.viewer.has(INSTANCE_MANAGE),
        notice=NOTICES.get(call.request.query.get("notice", "")),
    )


async def restore_connector(call: Call) -> web.StreamResponse:
    """POST /console/connectors/{tenant}/{name}/restore: its latest deletion back, as a new revision."""
    tenant, name = call.path("tenant"), call.path("name")
    retention = call.console.settings.deleted_retention
    try:
        restored = await call.console.plane.restore_connector(tenant, name, call.actor, retention=retention)
    except RestoreConflict as exc:
        raise Refusal(409, "restore_conflict", f"Cannot restore {tenant}/{name}: {exc}", audited=False) from None
    if restored is None:
        raise not_found("No such deleted connector.")
    return redirect(f"/console/connectors/{tenant}/{name}?notice=restored")


async def _document(call: Call) -> tuple[int, ConnectorDocument]:
    stored = await call.console.plane.specs.connector(call.path("tenant"), call.path("name"))
    if stored is None or not isinstance(stored.document, ConnectorDocument):
        raise not_found()
    return stored.revision, stored.document


async def delete_confirm(call: Call) -> web.StreamResponse:
    """GET .../delete: what deleting does, and the form that does it (for the revision shown)."""
    revision, document = await _document(call)
    tenant, name = document.key
    return call.render(
        "delete_confirm.html",
        title=f"Delete connector {tenant}/{name}",
        tenant=tenant,
        name=name,
        revision=revision,
        retention=format_duration(call.console.settings.deleted_retention),
    )


async def delete_connector(call: Call) -> web.StreamResponse:
    """POST .../delete: a soft delete of the revision the confirmation page showed (a change made
    meanwhile is a conflict, not deleted unseen); its store secrets go to the trash with it."""
    tenant, name = call.path("tenant"), call.path("name")
    revision = call.field("revision")
    if not revision.isdigit():
        raise invalid("The form names no revision: reload the page.", ["revision"])
    try:
        deleted = await call.console.plane.delete_connector(
            tenant, name, call.actor, expected_revision=int(revision), purge=False
        )
    except RevisionConflict as exc:
        if exc.current is None:  # gone meanwhile, or never there: as unknown as on the other pages
            raise not_found() from None
        message = f"The connector changed meanwhile (now revision {exc.current}): reload the page and retry."
        raise Refusal(409, "revision_conflict", message, audited=False) from None
    if deleted is None:
        raise not_found()
    return redirect("/console/deleted?notice=deleted")
