"""The publisher's retry logic: a timed-out attempt is retried under the same Nats-Msg-Id.

A stub stands in for the JetStream context because a real server cannot be made to time out on
one attempt and answer the next on cue; the real-server paths (NATS stopped, stream missing) are
covered in tests/hub/ingress/test_ingress_failures.py.
"""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest
from nats.js.api import PubAck

from hub.app.metrics import HubMetrics
from hub.errors import BodyTooLarge, PublishUnavailable
from hub.ingest.publisher import Publisher


class StubJetStream:
    """Raises the queued errors in order, then acknowledges; records every call."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    async def publish(self, subject: str, payload: bytes, **options: Any) -> PubAck:
        self.calls.append({"subject": subject, "timeout": options["timeout"], "headers": dict(options["headers"])})
        if self.errors:
            raise self.errors.pop(0)
        return PubAck(stream="HUB_EVENTS", seq=len(self.calls))


class StubNats:
    max_payload = 1024

    def __init__(self, js: StubJetStream) -> None:
        self._js = js

    def jetstream(self) -> StubJetStream:
        return self._js


def publisher(js: StubJetStream) -> tuple[Publisher, HubMetrics]:
    metrics = HubMetrics()
    return Publisher(StubNats(js), metrics), metrics  # type: ignore[arg-type]


async def test_a_timed_out_attempt_is_retried_under_the_same_msg_id() -> None:
    js = StubJetStream(nats.errors.TimeoutError())
    pub, metrics = publisher(js)

    ack = await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=2.0)

    assert ack.seq == 2
    assert [call["headers"]["Nats-Msg-Id"] for call in js.calls] == ["a:b:1", "a:b:1"]
    assert [call["timeout"] for call in js.calls] == [1.0, 1.0]  # each attempt gets half the deadline
    assert metrics.publish_retries._value.get() == 1


@pytest.mark.parametrize("error", [nats.errors.TimeoutError(), TimeoutError(), nats.errors.NoRespondersError()])
async def test_no_ack_within_the_deadline_is_unavailable(error: Exception) -> None:
    js = StubJetStream(error, error)
    pub, _ = publisher(js)

    with pytest.raises(PublishUnavailable) as raised:
        await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=1.0)

    assert raised.value.retry_after_s > 0
    assert len(js.calls) == 2


async def test_a_payload_over_the_server_limit_is_too_large_not_retried() -> None:
    js = StubJetStream(nats.errors.MaxPayloadError())
    pub, _ = publisher(js)

    with pytest.raises(BodyTooLarge) as raised:
        await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=1.0)

    assert (raised.value.reason, raised.value.limit, len(js.calls)) == ("too_large_for_bus", 1024, 1)
