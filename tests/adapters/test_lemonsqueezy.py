"""Lemon Squeezy adapter: reference vectors, verification failures, body-hash ids, normalization, round trips."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.lemonsqueezy import LemonSqueezyAdapter
from tests.adapters.refusals import refusal_reason

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "lemonsqueezy.json").read_text())["vectors"]
NOW = 1_700_000_000
ADAPTER = LemonSqueezyAdapter.configure()
OLD = SigningSecret("old", b"old-signing-secret")
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


def inbound(headers: dict[str, str] | Iterable[tuple[str, str]], body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url="http://hub.test/hooks/acme/ls", headers=headers, body=body, received_at=NOW
    )


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


@pytest.mark.parametrize("signer", [OLD, NEW])
def test_rotation_accepts_either_secret_and_names_it(signer: SigningSecret) -> None:
    headers = ADAPTER.sign(TestRequest(headers={}, body=BODY), signer, NOW).headers
    assert ADAPTER.verify(inbound(headers), [OLD, NEW]).key_id == signer.key_id


def test_tampered_body_and_wrong_secret_do_not_match() -> None:
    assert reason_of(delivery(BODY.replace(b"active", b"paused")), [NEW]) == "no_match"
    assert reason_of(delivery(), [OLD]) == "no_match"


def test_missing_and_duplicated_header() -> None:
    assert reason_of(inbound({"X-Event-Name": "order_created"}), [NEW]) == "missing_header"
    assert reason_of(inbound([("X-Signature", SIGNATURE), ("x-signature", SIGNATURE)]), [NEW]) == "duplicate_header"


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


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped (staying in ASCII)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


@settings(max_examples=150)
@given(
    body=st.binary(min_size=1, max_size=300),
    key=st.binary(min_size=1, max_size=64),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_round_trip_and_any_flipped_bit_is_rejected(body: bytes, key: bytes, index: int, bit: int) -> None:
    secret = SigningSecret("k", key)
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers
    assert headers["X-Signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
    assert ADAPTER.verify(inbound(headers, body), [secret]).key_id == "k"
    position = index % len(body)
    tampered = body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound(headers, tampered), [secret])
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound({"X-Signature": flip(headers["X-Signature"], index, bit)}, body), [secret])
