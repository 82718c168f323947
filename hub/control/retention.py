"""What the hub keeps and for how long: each stream's retention as configured (events/streams.py,
the HUB_*_MAX_AGE and HUB_*_MAX_BYTES settings) beside its current size, and how long a deleted
connector stays restorable. Read by `connector-hub retention` and `GET /v1/retention`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from events.streams import STREAMS
from hub.control.trash import Trash
from hub.settings import Settings
from schemas.durations import format_duration

STREAM_INFO = "$JS.API.STREAM.INFO."
"""Asked directly: nats-py's StreamState drops the server's `num_subjects`, which is what sizes a
stream's subject index in nats-server's memory (one entry per event's journey in HUB_JOURNEYS)."""
NOT_FOUND = 404
TIMEOUT_S = 5.0


class StreamInfoError(Exception):
    """The server answered a stream's info request with an error other than "not found"."""


async def stream_state(nc: NATS, name: str) -> dict[str, Any] | None:
    """The stream's `state` as the server reports it, or None when it does not exist."""
    reply = orjson.loads((await nc.request(STREAM_INFO + name, b"", timeout=TIMEOUT_S)).data)
    error = reply.get("error")
    if error is not None:
        if error.get("code") == NOT_FOUND:
            return None
        raise StreamInfoError(f"{name}: {error.get('description', 'error')}")
    state: dict[str, Any] = reply["state"]
    return state


async def retention_report(nc: NATS, settings: Settings, trash: Trash) -> dict[str, Any]:
    """Per stream: the configured age and byte cap (0: none) and its current bytes, messages and
    distinct subjects (`exists: false` for a stream not created yet); the deleted-connector retention
    and how many deleted connectors are kept; the audit stream's floor."""
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
        state = await stream_state(nc, name)
        if state is None:
            row |= {"exists": False, "bytes": 0, "messages": 0, "subjects": 0}
        else:
            row |= {
                "exists": True,
                "bytes": state["bytes"],
                "messages": state["messages"],
                "subjects": state.get("num_subjects", 0),
            }
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
