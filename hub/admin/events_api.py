"""The admin API's operations on event history and journeys."""

from __future__ import annotations

from hub.admin.routes import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = ()
