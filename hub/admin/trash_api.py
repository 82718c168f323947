"""The admin API's operations on deleted connectors and retention: `POST .../{name}:restore`,
`GET /v1/trash` (a tenant key: its own tenant's; another tenant's is like a missing one) and
`GET /v1/retention` (an operator key: the streams hold every tenant's records)."""

from __future__ import annotations

from aiohttp import web

from hub.admin.errors import ApiError, Denied, not_found
from hub.admin.routes import (
    CATALOG_READ,
    CONNECTOR,
    INSTANCE_MANAGE,
    OPERATION_READ,
    Call,
    Endpoint,
    etag,
    json_response,
    tenant_of_listing,
)
from hub.control.plane import RestoreConflict
from hub.control.retention import retention_report


async def restore_connector(call: Call) -> web.Response:
    """Bring a deleted connector back from the trash (its latest deletion, within the retention)."""
    tenant, name = call.path("tenant"), call.path("name")
    retention = call.admin.settings.deleted_retention
    try:
        restored = await call.plane.restore_connector(tenant, name, call.actor, retention=retention)
    except RestoreConflict as exc:
        raise ApiError(409, "restore_conflict", str(exc)) from None
    if restored is None:
        raise not_found()
    body = {"restored": f"{tenant}/{name}", "revision": restored.revision, "secrets": restored.entry.secret_names}
    return json_response(body, headers={"ETag": etag(restored.revision)})


async def list_trash(call: Call) -> web.Response:
    """The deleted connectors the key can see, restorable until their `expiresAt`."""
    retention = call.admin.settings.deleted_retention
    entries = await call.plane.trash.entries(tenant_of_listing(call))
    return json_response({"deleted": [e.to_dict(retention) for e in entries]})


async def retention(call: Call) -> web.Response:
    """Each stream's retention and size, and the deleted-connector retention."""
    if call.principal.tenant is not None:
        raise Denied(403, "operator_only", "stream retention spans every tenant: only an operator key reads it")
    if call.admin.nc is None:
        raise ApiError(503, "unavailable", "this process has no connection to the bus's streams")
    return json_response(await retention_report(call.admin.nc, call.admin.settings, call.plane.trash))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        CONNECTOR + ":restore",
        restore_connector,
        INSTANCE_MANAGE,
        "Restore a deleted connector",
        "restoreConnector",
    ),
    Endpoint(
        "GET", "/v1/trash", list_trash, CATALOG_READ, "Deleted connectors, restorable until expiresAt", "listTrash"
    ),
    Endpoint("GET", "/v1/retention", retention, OPERATION_READ, "Streams' retention and sizes", "retention"),
)
