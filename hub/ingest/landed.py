"""Whether a publish whose outcome was unknown landed in the stream after all.

A publish that timed out, or whose connection dropped, may still be stored: the server can have
written it and died before its PubAck left. The sender was answered 503 and retries; JetStream drops
the retry as a duplicate only within its duplicate window. A retry that comes later must not publish
what is already stored, so the ingestor looks for the message (`Nats-Msg-Id`) on its subject in the
part of the stream that JetStream's window no longer covers: from the failed publish back by its
deadline, up to `now - duplicate window`. That range is empty for a retry within the window, and
only the messages of one connector's event type are read, by direct gets (`next_by_subj`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import nats.errors
import orjson
from nats.aio.client import Client as NATS

log = logging.getLogger(__name__)

SCAN_LIMIT = 10_000
"""Messages read at most for one check; past it the message counts as not stored (logged)."""
CLOCK_MARGIN_S = 2.0
"""Room for the difference between this process's clock and the servers'."""
REQUEST_TIMEOUT_S = 2.0


class StoredCheck:
    """Looks for a message id on a subject in a stream, within a time range."""

    def __init__(self, nc: NATS, stream: str, duplicate_window_s: float) -> None:
        self._nc = nc
        self._api = f"$JS.API.DIRECT.GET.{stream}"
        self._window_s = duplicate_window_s

    def range_to_read(self, failed_at: float, deadline_s: float, now: float) -> tuple[float, float] | None:
        """The times whose messages JetStream no longer dedupes against, or None when there are none."""
        start = failed_at - deadline_s - CLOCK_MARGIN_S
        end = now - self._window_s + CLOCK_MARGIN_S
        return (start, end) if end > start else None

    async def stored(self, subject: str, msg_id: str, failed_at: float, deadline_s: float, now: float) -> bool:
        """Whether `msg_id` is on `subject` among the messages JetStream no longer dedupes against.

        Raises nats errors (and TimeoutError) as publishing would: the caller answers 503.
        """
        span = self.range_to_read(failed_at, deadline_s, now)
        if span is None:
            return False
        start, end = span
        request: dict[str, object] = {"start_time": _rfc3339_nanos(start), "next_by_subj": subject}
        for _ in range(SCAN_LIMIT):
            reply = await self._nc.request(self._api, orjson.dumps(request), timeout=REQUEST_TIMEOUT_S)
            headers = reply.headers or {}
            if headers.get("Status") == "404":
                return False
            if headers.get("Status"):
                raise nats.errors.Error(f"direct get failed: {headers.get('Status')}")
            if _timestamp(headers.get("Nats-Time-Stamp", "")) > end:
                return False
            if headers.get("Nats-Msg-Id") == msg_id:
                return True
            request = {"seq": int(headers["Nats-Sequence"]) + 1, "next_by_subj": subject}
        log.warning("stored-message check gave up; publishing again", extra={"subject": subject, "read": SCAN_LIMIT})
        return False


def _rfc3339_nanos(moment: float) -> str:
    return datetime.fromtimestamp(max(moment, 0.0), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp(text: str) -> float:
    """A `Nats-Time-Stamp` (RFC 3339 with nanoseconds) as seconds; 0 when absent or unreadable."""
    if not text:
        return 0.0
    whole, _, fraction = text.rstrip("Z").partition(".")
    try:
        seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0
    return seconds + (float("0." + fraction) if fraction.isdigit() else 0.0)
