"""Publish to JetStream and wait for the PubAck, retrying within the connector's answer budget.

An attempt that fails or times out has an unknown outcome (the message may be stored), so it is
retried with the same `Nats-Msg-Id`: JetStream recognizes the retry as a duplicate if an earlier one
landed. Attempts go on, with a short growing pause between them, until the deadline (the answer
budget, which fits inside the provider's own timeout): a stream leader election, a reconnect to
another node or a restarting server shorter than the budget costs the sender nothing. When the
deadline passes without an ack, `PublishUnavailable` tells the sender to retry.
"""

from __future__ import annotations

import asyncio
import logging
import time

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.api import PubAck

from events.directget import HistoryUnavailable
from events.streams import EVENTS_STREAM, StreamSettings
from hub.errors import BodyTooLarge, PublishUnavailable
from hub.ingest.landed import StoredCheck
from hub.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

MSG_ID_HEADER = "Nats-Msg-Id"
ATTEMPT_TIMEOUT_S = 2.0
"""The longest one attempt waits for its PubAck: a request lost to a dying leader is retried instead of
holding the whole budget."""
PAUSE_MIN_S = 0.05
PAUSE_MAX_S = 0.5
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
        except HistoryUnavailable:
            raise PublishUnavailable("the event bus cannot be read; retry later") from None

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str], msg_id: str, deadline_s: float
    ) -> PubAck:
        """The PubAck of `payload`, or PublishUnavailable when none came within `deadline_s`."""
        headers[MSG_ID_HEADER] = msg_id
        deadline = time.monotonic() + deadline_s
        pause_s = PAUSE_MIN_S
        attempts = 0
        last: Exception | None = None
        while (remaining := deadline - time.monotonic()) > 0 or not attempts:
            if attempts:
                self._metrics.publish_retries.inc()
            attempts += 1
            timeout = min(max(remaining, 0.001), ATTEMPT_TIMEOUT_S)
            try:
                return await self._js.publish(subject, payload, timeout=timeout, headers=headers)
            except nats.errors.MaxPayloadError:
                raise BodyTooLarge(self._nc.max_payload, "too_large_for_bus") from None
            except _TRANSIENT as exc:
                last = exc
            await asyncio.sleep(max(0.0, min(pause_s, deadline - time.monotonic())))
            pause_s = min(pause_s * 2, PAUSE_MAX_S)
        log.warning(
            "publish not acknowledged in time",
            extra={"subject": subject, "error": type(last).__name__, "attempts": attempts},
        )
        raise PublishUnavailable("the event bus did not confirm the publish in time; retry later")
