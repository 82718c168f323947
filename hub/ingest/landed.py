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

from nats.aio.client import Client as NATS

from events.directget import direct_get

log = logging.getLogger(__name__)

SCAN_LIMIT = 10_000
"""Messages read at most for one check; past it the message counts as not stored (logged)."""
CLOCK_MARGIN_S = 2.0
"""Room for the difference between this process's clock and the servers'."""
BATCH = 256
"""Messages read per direct get."""


class StoredCheck:
    """Looks for a message id on a subject in a stream, within a time range."""

    def __init__(self, nc: NATS, stream: str, duplicate_window_s: float) -> None:
        self._nc = nc
        self._stream = stream
        self._window_s = duplicate_window_s

    def range_to_read(self, failed_at: float, deadline_s: float, now: float) -> tuple[float, float] | None:
        """The times whose messages JetStream no longer dedupes against, or None when there are none."""
        start = failed_at - deadline_s - CLOCK_MARGIN_S
        end = now - self._window_s + CLOCK_MARGIN_S
        return (start, end) if end > start else None

    async def stored(self, subject: str, msg_id: str, failed_at: float, deadline_s: float, now: float) -> bool:
        """Whether `msg_id` is on `subject` among the messages JetStream no longer dedupes against.

        Raises HistoryUnavailable when the stream does not answer: the caller answers 503.
        """
        span = self.range_to_read(failed_at, deadline_s, now)
        if span is None:
            return False
        start, end = span
        batch = await direct_get(self._nc, self._stream, subject=subject, start_time=start, batch=BATCH)
        read = 0
        while batch and read < SCAN_LIMIT:
            for stored in batch:
                if stored.stored_at > end:
                    return False
                if stored.headers.get("Nats-Msg-Id") == msg_id:
                    return True
            read += len(batch)
            if batch[-1].pending == 0:
                return False
            batch = await direct_get(self._nc, self._stream, seq=batch[-1].sequence + 1, subject=subject, batch=BATCH)
        if read >= SCAN_LIMIT:
            log.warning("stored-message check gave up; publishing again", extra={"subject": subject, "read": read})
        return False
