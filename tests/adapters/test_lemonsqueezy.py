"""Lemon Squeezy adapter: reference vectors, malformed headers, body-hash ids, normalization.

The rules every provider keeps (round trips, rotation, tampering, missing and repeated headers, dedupe
keys, no echo) are proven for `lemonsqueezy` by test_conformance.py."""

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
from adapters.webhooks.lemonsqueezy import LemonSqueezyAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("lemonsqueezy")
ADAPTER = LemonSqueezyAdapter.configure()
NEW = SigningSecret("new", b"new-signing-secret")
EVENT: dict[str, Any] = {
    "meta": {"test_mode": False, "event_name": "subscription_updated", "custom_data": {"user_id": "u_42"}},
    "data": {
        "type": "subscriptions",
        "id": "1",
        "attributes": {
            "store_id": 1,
            "customer_id": 1,
            "status": "active",
            "created_at": "2021-08-11T13:47:27.000000Z",
            "updated_at": "2021-08-11T13:54:19.000000Z",
        },
        "links": {"self": "https://api.lemonsqueezy.com/v1/subscriptions/1"},
    },
}
BODY = orjson.dumps(EVENT)
SIGNATURE = hmac.new(NEW.value, BODY, hashlib.sha256).hexdigest()
inbound = Endpoint("http://hub.test/hooks/acme/ls", BODY)


def delivery(
    body: bytes = BODY, signature: str = SIGNATURE, event_name: str = "subscription_updated"
) -> InboundRequest:
    return inbound({"X-Event-Name": event_name, "X-Signature": signature}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_reference_vectors_verify_and_are_what_sign_produces(vector: dict[str, str]) -> None:
    secret = SigningSecret("docs", vector["secret"].encode())
    body = vector["payload"].encode()
    assert ADAPTER.verify(inbound({"X-Signature": vector["signature"]}, body), [secret]) == Verification(
        "hmac-sha256", "docs", None, bytes.fromhex(vector["signature"])
    )
    assert ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers["X-Signature"] == vector["signature"]


MALFORMED = {
    "empty": "",
    "truncated": SIGNATURE[:-2],
    "over-long": SIGNATURE + "00",
    "with a sha256= prefix": "sha256=" + SIGNATURE,
    "uppercase hex": SIGNATURE.upper(),
    "non-hex": SIGNATURE[:-1] + "g",
    "base64 instead of hex": "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=",
    "space inside": SIGNATURE[:20] + " " + SIGNATURE[21:],
    "two signatures": SIGNATURE + "," + SIGNATURE,
    "non-ascii": SIGNATURE[:-1] + "\u00e9",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_headers_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(signature=header), [NEW]) == "malformed_signature"


def test_no_timestamp_is_signed_and_there_is_no_handshake() -> None:
    assert ADAPTER.scheme.dedupe_key_signed is True  # the body hash: a replay is the same id
    assert ADAPTER.scheme.timestamp is None
    assert ADAPTER.replay_window_s is None
    assert ADAPTER.verify(delivery(), [NEW]).signed_at is None
    assert ADAPTER.handshake(delivery(), [NEW]) is None


def test_normalize_subscription_updated() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert event.id == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert event.type == "lemonsqueezy.subscription_updated"
    assert event.subject == "subscriptions/1"
    assert event.time == datetime(2021, 8, 11, 13, 54, 19, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_the_same_body_is_the_same_id_and_another_update_is_another() -> None:
    later = orjson.dumps({**EVENT, "data": {**EVENT["data"], "attributes": {"updated_at": "2021-08-12T00:00:00Z"}}})
    assert ADAPTER.normalize(delivery())[0].id == ADAPTER.normalize(delivery())[0].id
    assert ADAPTER.normalize(delivery(later))[0].id != ADAPTER.normalize(delivery())[0].id


def test_the_signed_event_name_wins_over_the_unsigned_header() -> None:
    [event] = ADAPTER.normalize(delivery(event_name="order_refunded"))
    assert event.type == "lemonsqueezy.subscription_updated"


@pytest.mark.parametrize(
    ("body", "subject", "time"),
    [
        ({"data": {"type": "orders", "id": 7, "attributes": {"created_at": "2021-08-17T09:45:53Z"}}}, "orders/7", 1),
        ({"data": {"type": "orders", "attributes": {"updated_at": "2021-08-17T09:45:53"}}}, None, None),
        ({"meta": "x", "data": [1]}, None, None),
        ({"data": {"id": "1", "attributes": {"updated_at": "soon", "created_at": 5}}}, None, None),
    ],
)
def test_normalize_falls_back_to_the_header_name_and_tolerates_odd_shapes(
    body: dict[str, Any], subject: str | None, time: int | None
) -> None:
    [event] = ADAPTER.normalize(delivery(orjson.dumps(body), event_name="order_created"))
    assert (event.type, event.subject) == ("lemonsqueezy.order_created", subject)
    assert event.time == (datetime(2021, 8, 17, 9, 45, 53, tzinfo=UTC) if time else None)


def test_normalize_needs_an_event_name() -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({}, orjson.dumps({"meta": {"event_name": ""}, "data": {}})))


HOSTILE = [b"", b"[1, 2]", b'{"a": NaN}', b'{"a": 1e999}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a":"\\ud800"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={"X-Event-Name": "x"}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_order_created_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    assert sample.body != ADAPTER.sample(NOW).body
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    body = orjson.loads(sample.body)
    assert (event.type, event.subject, event.time) == (
        "lemonsqueezy.order_created",
        f"orders/{body['data']['id']}",
        datetime.fromtimestamp(NOW, UTC),
    )


@settings(max_examples=150)
@given(body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64))
def test_sign_is_hmac_sha256_of_the_body_for_any_body_and_key(body: bytes, key: bytes) -> None:
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), SigningSecret("k", key), NOW).headers
    assert headers["X-Signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
