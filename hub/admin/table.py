"""Every operation of the admin API: the router and the OpenAPI document both read this table."""

from __future__ import annotations

from hub.admin import catalog_api, events_api, jobs_api, rejected_api, routes, trash_api
from hub.admin.routes import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    *routes.ENDPOINTS,
    *events_api.ENDPOINTS,
    *rejected_api.ENDPOINTS,
    *jobs_api.ENDPOINTS,
    *catalog_api.ENDPOINTS,
    *trash_api.ENDPOINTS,
)
