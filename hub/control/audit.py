"""Publishing audit records of control-plane changes and denied API calls on `hub.audit.<tenant>.<action>`.

Records name keys by id and secrets by name and version; a value or a token never goes in one.
A record that cannot be published is logged (without its detail) and does not undo the change it
describes: the change is already in the store, and refusing to report it would not make it unhappen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import nats.errors
from nats.js import JetStreamContext

from events.audit import AuditRecord
from events.envelope import rfc3339
from events.subjects import audit_subject

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 2.0


class AuditLog:
    """Where this process's control-plane audit records go."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def record(
        self,
        *,
        tenant: str,
        action: str,
        target: str,
        outcome: str,
        request_id: str | None,
        key_id: str | None,
        started: float,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Publish one record; `started` is the `time.perf_counter()` at the start of the operation."""
        record = AuditRecord(
            tenant=tenant,
            action=action,
            target=target,
            outcome=outcome,
            time=rfc3339(time.time()),
            detail=detail or {},
            request_id=request_id,
            key_id=key_id,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        try:
            await self._js.publish(audit_subject(tenant, action), record.to_json(), timeout=PUBLISH_TIMEOUT_S)
        except (nats.errors.Error, TimeoutError) as exc:
            log.error(
                "audit record not published",
                extra={"action": action, "target": target, "outcome": outcome, "error": type(exc).__name__},
            )
