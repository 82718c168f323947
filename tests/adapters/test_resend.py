"""Resend adapter: svix SDK vectors over Resend's payloads, normalization (the rules every provider
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
from adapters.webhooks.resend import ResendAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors
from tests.adapters.svix_senders import SvixSchemeSuite, svix_signature

VECTORS = vectors("resend")
ADAPTER = ResendAdapter.configure()
NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 24))
MSG_ID = "msg_2h3NAj8mWdx6Y9dPn7yTE5gWU3x"
EVENT: dict[str, Any] = {
    "type": "email.bounced",
    "created_at": "2023-11-14T22:13:20.123Z",
    "data": {
        "created_at": "2023-11-14T22:13:18.894719+00:00",
        "email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
        "from": "Acme <onboarding@resend.dev>",
        "to": ["bounced@resend.dev"],
        "subject": "Your receipt",
        "bounce": {"message": "The recipient's mail server permanently rejected the email.", "type": "Permanent"},
    },
}
BODY = orjson.dumps(EVENT)
SVIX = ("svix-id", "svix-timestamp", "svix-signature")


GOOD = svix_signature(NEW, MSG_ID, NOW, BODY)
inbound = Endpoint("http://hub.test/hooks/acme/resend", BODY)


def delivery(
    signature: str = GOOD, body: bytes = BODY, msg_id: str = MSG_ID, timestamp: str = str(NOW)
) -> InboundRequest:
    return inbound(dict(zip(SVIX, (msg_id, timestamp, signature), strict=True)), body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (
            0,
            (
                "resend.email.delivered",
                "56761188-7520-42d8-8898-ff6fc54ce618",
                datetime(2024, 2, 22, 23, 41, 12, 126000, UTC),
            ),
        ),
        (
            1,
            (
                "resend.contact.created",
                "e169aa45-1ecf-4183-9955-b1499d5701d3",
                datetime(2024, 10, 11, 23, 47, 56, 678000, UTC),
            ),
        ),
    ],
)
def test_normalize_resends_documented_payloads(index: int, expected: tuple[str, str, datetime]) -> None:
    vector = VECTORS[index]
    body = vector["payload"].encode()
    [event] = ADAPTER.normalize(delivery(vector["signature"], body, vector["msg_id"], str(vector["timestamp"])))
    assert (event.type, event.subject, event.time) == expected
    assert event.id == vector["msg_id"]
    assert orjson.dumps(event.data) == body


def test_normalize_bounce_and_missing_parts() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type, event.subject) == (MSG_ID, "resend.email.bounced", EVENT["data"]["email_id"])
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)
    [bare] = ADAPTER.normalize(delivery(body=orjson.dumps({**EVENT, "created_at": "2023-11-14", "data": {"id": 7}})))
    assert (bare.subject, bare.time) == (None, None)


HOSTILE = [b"", b"[]", b'{"type": NaN}', b"\xed\xa0\x80", b'{"a":[' * 2000, b"{}", b'{"type": ""}', b'{"type": 1}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_or_typeless_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={"svix-id": MSG_ID}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_email_delivered_event() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    signed = ADAPTER.sign(sample, NEW, NOW)
    assert {name.lower() for name in signed.headers} == {"content-type", *SVIX}
    request = inbound(signed.headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.time) == (
        sample.headers["svix-id"],
        "resend.email.delivered",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert len(event.subject or "") == 36  # the email's uuid
    assert event.id != ADAPTER.sample(NOW).headers["svix-id"]


class TestResendScheme(SvixSchemeSuite):
    """The Svix specifics under the `resend` name: SDK vectors, changed ids and timestamps, malformed headers."""

    adapter = ADAPTER
    body = BODY


def test_is_registered_under_its_name() -> None:
    assert WEBHOOK_PROVIDERS["resend"] is ResendAdapter
