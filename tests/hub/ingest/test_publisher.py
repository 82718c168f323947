"""The publisher's retry logic: a timed-out attempt is retried under the same Nats-Msg-Id.

A stub stands in for the JetStream context because a real server cannot be made to time out on
one attempt and answer the next on cue; the real-server paths (NATS stopped, stream missing) are
covered in tests/hub/ingress/test_ingress_failures.py.
"""

from __future__ import annotations

import time
from typing import Any

import nats.errors
import pytest
from nats.js.api import PubAck

from hub.app.metrics import HubMetrics
from hub.errors import BodyTooLarge, PublishUnavailable
from hub.ingest.publisher import ATTEMPT_TIMEOUT_S, Publisher


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

    ack = await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=8.0)

    assert ack.seq == 2
    assert [call["headers"]["Nats-Msg-Id"] for call in js.calls] == ["a:b:1", "a:b:1"]
    assert js.calls[0]["timeout"] == ATTEMPT_TIMEOUT_S  # one attempt never holds the whole budget
    assert metrics.publish_retries._value.get() == 1


async def test_attempts_go_on_until_the_budget_is_spent_so_an_election_inside_it_costs_nothing() -> None:
    """A leader election answers "no responders" (or nothing) for a few seconds: every attempt inside the
    budget is made under the same id, and the first that is acknowledged is the answer."""
    outage = [nats.errors.NoRespondersError()] * 5 + [nats.errors.TimeoutError()] * 2
    js = StubJetStream(*outage)
    pub, _ = publisher(js)

    ack = await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=5.0)

    assert ack.seq == 8
    assert {call["headers"]["Nats-Msg-Id"] for call in js.calls} == {"a:b:1"}


@pytest.mark.parametrize("error", [nats.errors.TimeoutError(), TimeoutError(), nats.errors.NoRespondersError()])
async def test_no_ack_within_the_deadline_is_unavailable(error: Exception) -> None:
    js = StubJetStream(*[error] * 100)
    pub, _ = publisher(js)
    started = time.monotonic()

    with pytest.raises(PublishUnavailable) as raised:
        await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=0.5)

    assert raised.value.retry_after_s > 0
    assert 2 <= len(js.calls) < 100  # retried, with pauses between attempts
    assert time.monotonic() - started < 0.5 + ATTEMPT_TIMEOUT_S  # the budget bounds the answer


async def test_a_payload_over_the_server_limit_is_too_large_not_retried() -> None:
    js = StubJetStream(nats.errors.MaxPayloadError())
    pub, _ = publisher(js)

    with pytest.raises(BodyTooLarge) as raised:
        await pub.publish("hub.events.a.b.c", b"{}", {}, msg_id="a:b:1", deadline_s=1.0)

    assert (raised.value.reason, raised.value.limit, len(js.calls)) == ("too_large_for_bus", 1024, 1)
