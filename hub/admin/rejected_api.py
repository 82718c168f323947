"""The admin API's operations on rejected requests kept for diagnosis."""

from __future__ import annotations

from hub.admin.routes import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = ()
