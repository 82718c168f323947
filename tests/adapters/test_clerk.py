"""Clerk adapter: svix SDK vectors over Clerk's payloads, normalization (the rules every provider
keeps: test_conformance.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.registry import WEBHOOK_PROVIDERS
from adapters.webhooks.clerk import ClerkAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors
from tests.adapters.svix_senders import SvixSchemeSuite, svix_signature

VECTORS = vectors("clerk")
ADAPTER = ClerkAdapter.configure()
NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 24))
MSG_ID = "msg_2h3NAj8mWdx6Y9dPn7yTE5gWU3x"
EVENT: dict[str, Any] = {
    "data": {"id": "sess_2h3N9l2kYb2bN0iX0Vc4", "object": "session", "user_id": "user_2h3N9", "status": "active"},
    "instance_id": "ins_2g8ZKXBm5Q",
    "object": "event",
    "timestamp": 1700000000123,
    "type": "session.created",
}
BODY = orjson.dumps(EVENT)
SVIX = ("svix-id", "svix-timestamp", "svix-signature")


GOOD = svix_signature(NEW, MSG_ID, NOW, BODY)
inbound = Endpoint("http://hub.test/hooks/acme/clerk", BODY)


def delivery(
    signature: str = GOOD, body: bytes = BODY, msg_id: str = MSG_ID, timestamp: str = str(NOW)
) -> InboundRequest:
    return inbound(dict(zip(SVIX, (msg_id, timestamp, signature), strict=True)), body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, ("clerk.user.created", "user_29w83sxmDNGwOuEthce5gg56FcC", datetime(2022, 5, 31, 15, 56, 31, 835000, UTC))),
        (1, ("clerk.user.deleted", "user_29wBMCtzATuFJut8jO2VNTVekS4", datetime(2022, 8, 30, 12, 14, tzinfo=UTC))),
    ],
)
def test_normalize_clerks_documented_payloads(index: int, expected: tuple[str, str, datetime]) -> None:
    vector = VECTORS[index]
    body = vector["payload"].encode()
    [event] = ADAPTER.normalize(delivery(vector["signature"], body, vector["msg_id"], str(vector["timestamp"])))
    assert (event.type, event.subject, event.time) == expected
    assert event.id == vector["msg_id"]
    assert orjson.dumps(event.data) == body


def test_normalize_session_event_and_missing_parts() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type, event.subject) == (MSG_ID, "clerk.session.created", "sess_2h3N9l2kYb2bN0iX0Vc4")
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)
    [bare] = ADAPTER.normalize(delivery(body=orjson.dumps({**EVENT, "timestamp": "1700000000", "data": {}})))
    assert (bare.subject, bare.time) == (None, None)


HOSTILE = [b"", b"[]", b'{"type": NaN}', b"\xed\xa0\x80", b'{"a":[' * 2000, b"{}", b'{"type": ""}', b'{"type": 1}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_or_typeless_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={"svix-id": MSG_ID}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_user_created_event() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    signed = ADAPTER.sign(sample, NEW, NOW)
    assert {name.lower() for name in signed.headers} == {"content-type", *SVIX}
    request = inbound(signed.headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.time) == (
        sample.headers["svix-id"],
        "clerk.user.created",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert (event.subject or "").startswith("user_")
    assert event.id != ADAPTER.sample(NOW).headers["svix-id"]


class TestClerkScheme(SvixSchemeSuite):
    """The Svix specifics under the `clerk` name: SDK vectors, changed ids and timestamps, malformed headers."""

    adapter = ADAPTER
    body = BODY


def test_is_registered_under_its_name() -> None:
    assert WEBHOOK_PROVIDERS["clerk"] is ClerkAdapter
