"""The admin API's operations on jobs, replay and dead letters."""

from __future__ import annotations

from hub.admin.routes import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = ()
