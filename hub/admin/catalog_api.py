"""`GET /v1/catalog`: every provider and poller with its type version, the version of its options'
schema, its lifecycle state and whether this hub serves it (HUB_DISABLED_PROVIDERS).

The catalog is the hub's, not a tenant's: every key with the catalog scope reads the same answer.
"""

from __future__ import annotations

from aiohttp import web

from adapters.registry import catalog
from hub.admin.routes import CATALOG_READ, Call, Endpoint, json_response


async def get_catalog(call: Call) -> web.Response:
    """The connector types this hub knows, as `connector-hub catalog --json` prints them."""
    disabled = call.admin.settings.disabled_providers
    return json_response({"types": [info.to_dict(disabled) for info in catalog()]})


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET", "/v1/catalog", get_catalog, CATALOG_READ, "Connector types: versions, lifecycle, enabled", "getCatalog"
    ),
)
