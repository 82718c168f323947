"""Publishing audit records of control-plane changes and denied API calls on `hub.audit.<tenant>.<action>`.

Records name keys by id and secrets by name and version; a value or a token never goes in one.
A record that cannot be published is logged (without its detail) and does not undo the change it
describes: the change is already in the store, and refusing to report it would not make it unhappen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

import nats.errors
from nats.js import JetStreamContext

from events.audit import AuditRecord
from events.envelope import rfc3339
from events.subjects import HUB_WIDE, audit_subject, is_name

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 2.0


def denial_tenant(path_tenant: str | None, caller_tenant: str | None) -> str:
    """The tenant a denied request is audited under: the one its path names, else the caller's, else
    HUB_WIDE; a path is untrusted, so a name that is no valid subject token is HUB_WIDE too."""
    tenant = path_tenant or caller_tenant or HUB_WIDE
    return tenant if tenant == HUB_WIDE or is_name(tenant) else HUB_WIDE


class Acting(Protocol):
    """Who did what a record tells (hub.control.plane.Actor): a key by id, the request, when it began."""

    @property
    def key_id(self) -> str: ...

    @property
    def request_id(self) -> str | None: ...

    @property
    def started(self) -> float: ...


class AuditLog:
    """Where this process's control-plane audit records go."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def record_by(
        self,
        actor: Acting,
        tenant: str | None,
        action: str,
        target: str,
        outcome: str,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """`record` what `actor` did; a tenant of None is the hub as a whole (HUB_WIDE)."""
        await self.record(
            tenant=tenant or HUB_WIDE,
            action=action,
            target=target,
            outcome=outcome,
            request_id=actor.request_id,
            key_id=actor.key_id,
            started=actor.started,
            detail=detail,
        )

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
