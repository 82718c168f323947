"""Reading audit records back from HUB_AUDIT: a tenant's (or every tenant's), newest first.

JetStream reads forward only, so the newest records are found by reading a bounded time window
forward (`bulk_read.drain`, filtered by subject in the server) and keeping the last `limit` that
match. The window bounds the work a page does however long the stream's retention is.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from nats.js import JetStreamContext

from events.streams import AUDIT_STREAM
from events.subjects import AUDIT_PREFIX, HUB_WIDE, is_name
from hub.control.bulk_read import drain

ACTION = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""The form of an audit action (`connector_apply`, `denied`, ...)."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records: of a tenant (None: every tenant and the hub-wide ones), one action, one outcome."""

    tenant: str | None = None
    action: str | None = None
    outcome: str | None = None
    window: timedelta = timedelta(days=7)
    limit: int = 100

    def subject(self) -> str:
        """The subject filter (the action is the subject's last token, so it filters in the server)."""
        if self.tenant is not None and self.tenant != HUB_WIDE and not is_name(self.tenant):
            raise ValueError(f"{self.tenant!r} is not a tenant name")
        if self.action is not None and not ACTION.fullmatch(self.action):
            raise ValueError("an action is lowercase letters, digits and underscores")
        return f"{AUDIT_PREFIX}.{self.tenant or '*'}.{self.action or '*'}"


async def recent_audit_records(js: JetStreamContext, query: AuditQuery) -> list[dict[str, Any]]:
    """The newest `query.limit` records matching the query within its window, newest first."""
    since = datetime.now(UTC) - query.window
    kept: deque[dict[str, Any]] = deque(maxlen=query.limit)
    for message in await drain(js, AUDIT_STREAM, query.subject(), since=since):
        record = orjson.loads(message.data)
        if isinstance(record, dict) and (query.outcome is None or record.get("outcome") == query.outcome):
            kept.append(record)
    return list(reversed(kept))
