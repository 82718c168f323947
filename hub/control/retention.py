"""What the hub keeps and for how long: each stream's retention as configured (events/streams.py,
the HUB_*_MAX_AGE and HUB_*_MAX_BYTES settings) beside its current size, and how long a deleted
connector stays restorable. Read by `connector-hub retention` and `GET /v1/retention`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from events.streams import STREAMS
from hub.control.trash import Trash
from hub.settings import Settings
from schemas.durations import format_duration


async def retention_report(js: JetStreamContext, settings: Settings, trash: Trash) -> dict[str, Any]:
    """Per stream: the configured age and byte cap (0: none) and its current bytes and messages
    (`exists: false` for a stream not created yet); the deleted-connector retention and how many
    deleted connectors are kept; the audit stream's floor."""
    configured = settings.stream_settings()
    streams = []
    for name in STREAMS:
        retention = configured.retention_of(name)
        row: dict[str, Any] = {
            "stream": name,
            "maxAge": format_duration(timedelta(seconds=retention.max_age_s)),
            "maxAgeSeconds": retention.max_age_s,
            "maxBytes": retention.max_bytes,
        }
        try:
            state = (await js.stream_info(name)).state
        except NotFoundError:
            row |= {"exists": False, "bytes": 0, "messages": 0}
        else:
            row |= {"exists": True, "bytes": state.bytes, "messages": state.messages}
        streams.append(row)
    return {
        "streams": streams,
        "auditMinAge": format_duration(settings.audit_min_age),
        "deletedConnectors": {
            "retention": format_duration(settings.deleted_retention),
            "retentionSeconds": settings.deleted_retention.total_seconds(),
            "kept": len(await trash.entries()),
        },
    }
