"""Intercom adapter: reference vectors, SHA-1 only, malformed headers, the ping handshake, normalization.

The rules every provider keeps (round trips, rotation, tampering, missing and repeated headers, dedupe
keys, no echo) are proven for `intercom` by test_conformance.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks.intercom import IntercomAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("intercom")
ADAPTER = IntercomAdapter.configure()
OLD = SigningSecret("old", b"0ld-client-secret-0000-000000000000")
NEW = SigningSecret("new", b"d1f8b6e4-3c2a-4f5e-9b7d-1a2c3e4f5a6b")
EVENT: dict[str, Any] = {
    "type": "notification_event",
    "app_id": "ecahpwf5",
    "data": {"type": "notification_event_data", "item": {"type": "conversation", "id": "147", "state": "open"}},
    "links": {},
    "id": "notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3",
    "topic": "conversation.user.created",
    "delivery_status": "pending",
    "delivery_attempts": 1,
    "delivered_at": 0,
    "first_sent_at": 1519138937,
    "created_at": 1519138937,
    "self": None,
}
BODY = orjson.dumps(EVENT)


def reference(secret: SigningSecret, body: bytes) -> str:
    """`X-Hub-Signature` as Intercom documents it."""
    return "sha1=" + hmac.new(secret.value, body, hashlib.sha1).hexdigest()


GOOD = reference(NEW, BODY)
inbound = Endpoint("http://hub.test/hooks/acme/ic", BODY)


def signed(signature: str | None = None, body: bytes = BODY) -> InboundRequest:
    return inbound({"X-Hub-Signature": reference(NEW, body) if signature is None else signature}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_reference_vectors_verify_and_are_what_sign_produces(vector: dict[str, str]) -> None:
    secret = SigningSecret("ref", vector["secret"].encode())
    body = vector["payload"].encode()
    assert ADAPTER.verify(signed(vector["signature"], body), [secret]) == Verification(
        "hmac-sha1", "ref", None, bytes.fromhex(vector["signature"].removeprefix("sha1="))
    )
    assert (
        ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers["X-Hub-Signature"]
        == (vector["signature"])
    )


def test_a_sha256_signature_is_not_intercoms() -> None:
    sha256 = "sha256=" + hmac.new(NEW.value, BODY, hashlib.sha256).hexdigest()
    assert reason_of(inbound({"X-Hub-Signature": sha256}), [NEW]) == "malformed_signature"


def test_githubs_sha256_header_name_is_not_read() -> None:
    assert reason_of(inbound({"X-Hub-Signature-256": GOOD}), [NEW]) == "missing_header"


MALFORMED = {
    "empty": "",
    "prefix only": "sha1=",
    "no prefix": GOOD[5:],
    "prefix case": "SHA1=" + GOOD[5:],
    "truncated": GOOD[:-2],
    "over-long": GOOD + "00",
    "sha256 length": "sha1=" + "ab" * 32,
    "uppercase hex": "sha1=" + GOOD[5:].upper(),
    "non-hex": GOOD[:-1] + "g",
    "space inside": GOOD[:10] + " " + GOOD[11:],
    "non-ascii": GOOD[:-1] + "é",
    "thousands of signatures": ",".join([GOOD] * 5000),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str) -> None:
    assert reason_of(signed(header), [NEW]) == "malformed_signature"


def test_ping_is_a_handshake_answered_exactly_and_nothing_else_is() -> None:
    ping = orjson.dumps({**EVENT, "topic": "ping", "data": {"item": {"type": "ping", "message": "interzen"}}})
    assert ADAPTER.verify(signed(body=ping), [NEW]).key_id == "new"
    reply = ADAPTER.handshake(signed(body=ping), [NEW])
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, b'{"handshake":"ping"}', "application/json")
    for body in (BODY, b'{"topic": "PING"}', b'[{"topic": "ping"}]', b'{"data": {"topic": "ping"}}', b"not json"):
        assert ADAPTER.handshake(signed(body=body), [NEW]) is None


def test_intercom_signs_no_timestamp() -> None:
    assert ADAPTER.verify(signed(GOOD), [NEW]).signed_at is None
    assert ADAPTER.replay_window_s is None


def test_normalize_conversation_created() -> None:
    [event] = ADAPTER.normalize(signed(GOOD))
    assert event.id == "notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3"
    assert event.type == "intercom.conversation.user.created"
    assert event.subject == "147"
    assert event.time == datetime(2018, 2, 20, 15, 2, 17, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize("data", [None, {"item": None}, {"item": {"id": 147}}, {"item": {"id": ""}}])
def test_normalize_without_item_id_or_integer_time(data: object) -> None:
    body = orjson.dumps({**EVENT, "data": data, "created_at": "2018-02-20"})
    [event] = ADAPTER.normalize(signed(body=body))
    assert (event.subject, event.time) == (None, None)


@pytest.mark.parametrize("missing", ["id", "topic"])
def test_normalize_needs_id_and_topic(missing: str) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(body=orjson.dumps({k: v for k, v in EVENT.items() if k != missing})))


HOSTILE = [b"", b"[1, 2]", b'{"id": NaN}', b'{"a": 1e999}', b"\xff\xfe", b'{"a":' * 3000, b'{"id":"\\ud800"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    assert ADAPTER.handshake(request, [NEW]) is None
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_conversation_created() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    assert ADAPTER.handshake(request, [NEW]) is None
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.time) == ("intercom.conversation.user.created", datetime.fromtimestamp(NOW, UTC))
    assert event.id.startswith("notif_")
    assert event.subject == orjson.loads(sample.body)["data"]["item"]["id"]
    assert event.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[0].id


@settings(max_examples=150)
@given(body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64))
def test_sign_is_the_reference_for_any_body_and_key(body: bytes, key: bytes) -> None:
    secret = SigningSecret("k", key)
    assert ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers["X-Hub-Signature"] == reference(
        secret, body
    )
