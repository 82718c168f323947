"""Publish to JetStream and wait for the PubAck, within a deadline.

An attempt that times out has an unknown outcome (the message may be stored), so it is retried
with the same `Nats-Msg-Id`: JetStream recognizes the retry as a duplicate if the first one
landed. When the deadline passes without an ack, `PublishUnavailable` tells the sender to retry.
"""

from __future__ import annotations

import logging
import time

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.api import PubAck

from events.streams import EVENTS_STREAM, StreamSettings
from hub.errors import BodyTooLarge, PublishUnavailable
from hub.ingest.landed import StoredCheck
from hub.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
ATTEMPTS = 2
_TRANSIENT = (nats.errors.Error, TimeoutError)
"""Every nats-py error (timeouts, no responders, no stream, closed connection, API errors) leaves
the outcome unknown or the bus unable; the sender is told to retry, never given a 500."""


class Publisher:
    """JetStream publishes with PubAck, a deadline and a same-id retry."""

    def __init__(
        self, nc: NATS, metrics: IngestMetrics, *, duplicate_window_s: float = StreamSettings().duplicate_window_s
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._metrics = metrics
        self._stored = StoredCheck(nc, EVENTS_STREAM, duplicate_window_s)

    async def already_stored(self, subject: str, msg_id: str, failed_at: float, deadline_s: float) -> bool:
        """Whether an earlier publish of `msg_id` that failed at `failed_at` was stored all the same, where
        JetStream's duplicate window no longer covers it (hub.ingest.landed); PublishUnavailable if the
        stream cannot say."""
        try:
            return await self._stored.stored(subject, msg_id, failed_at, deadline_s, time.time())
        except _TRANSIENT:
            raise PublishUnavailable("the event bus cannot be read; retry later") from None

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str], msg_id: str, deadline_s: float
    ) -> PubAck:
        """The PubAck of `payload`, or PublishUnavailable when none came within `deadline_s`."""
        headers[MSG_ID_HEADER] = msg_id
        attempt_timeout = deadline_s / ATTEMPTS
        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                self._metrics.publish_retries.inc()
            try:
                return await self._js.publish(subject, payload, timeout=attempt_timeout, headers=headers)
            except nats.errors.MaxPayloadError:
                raise BodyTooLarge(self._nc.max_payload, "too_large_for_bus") from None
            except _TRANSIENT as exc:
                last = exc
        log.warning("publish not acknowledged in time", extra={"subject": subject, "error": type(last).__name__})
        raise PublishUnavailable("the event bus did not confirm the publish in time; retry later")
