"""Square adapter: the SDK's published vectors, the documented algorithm, the URL option, malformed headers.

The rules every provider keeps are proven for `square` by test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks.square import SquareAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("square")
URL = "https://hooks.example.com/hooks/acme/square"
ADAPTER = SquareAdapter.configure({"publicUrl": URL})
OLD = SigningSecret("old", b"MCmhFRxGX82xMwg5FsaoQA")
NEW = SigningSecret("new", b"Ibxx_5AKakO-3qeNVR61Dw")
EVENT: dict[str, Any] = {
    "merchant_id": "6SSW7HV8K2ST5",
    "type": "payment.updated",
    "event_id": "13b867cf-db3d-4b1c-90b6-2f32a9d78124",
    "created_at": "2020-02-06T21:27:34.308Z",
    "data": {"type": "payment", "id": "KkAkhdMsgzn59SM8A89WgKwekxLZY", "object": {"payment": {"status": "COMPLETED"}}},
}
BODY = orjson.dumps(EVENT)


def reference(secret: SigningSecret, url: str, body: bytes) -> str:
    """The signature as Square documents it (and squareup's `verify_signature` checks it)."""
    return base64.b64encode(hmac.new(secret.value, url.encode() + body, hashlib.sha256).digest()).decode()


GOOD = reference(NEW, URL, BODY)
inbound = Endpoint(URL, BODY)


def signed(signature: str = GOOD, body: bytes = BODY, url: str = URL) -> InboundRequest:
    return inbound({"x-square-hmacsha256-signature": signature}, body, url=url)


def reason_of(request: InboundRequest, secrets: list[SigningSecret], adapter: SquareAdapter = ADAPTER) -> str:
    return refusal_reason(adapter, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_sdk_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("sdk", vector["signature_key"].encode())
    url, body = vector["notification_url"], vector["payload"].encode()
    adapter = SquareAdapter.configure({"publicUrl": url})
    request = signed(vector["signature"], body, url)
    assert adapter.verify(request, [secret]) == Verification(
        "hmac-sha256", "sdk", None, base64.b64decode(vector["signature"])
    )
    assert SquareAdapter.configure().verify(request, [secret]).key_id == "sdk"  # the URL received is the default
    ours = adapter.sign(TestRequest(headers={}, body=body), secret, NOW)
    assert ours.headers["x-square-hmacsha256-signature"] == vector["signature"]


def test_sdk_vector_fails_for_another_url_key_or_reformatted_body() -> None:
    vector = VECTORS[0]
    secret, body = SigningSecret("sdk", vector["signature_key"].encode()), vector["payload"].encode()
    adapter = SquareAdapter.configure({"publicUrl": vector["notification_url"]})
    other_url = SquareAdapter.configure({"publicUrl": vector["notification_url"].replace("679a", "79a")})
    assert reason_of(signed(vector["signature"], body), [secret], other_url) == "no_match"
    assert reason_of(signed(vector["signature"], body), [OLD], adapter) == "no_match"
    pretty = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    assert reason_of(signed(vector["signature"], pretty), [secret], adapter) == "no_match"


def test_public_url_option_replaces_the_rewritten_url() -> None:
    behind_proxy = "http://10.0.0.7:8080/hooks/acme/square"
    assert ADAPTER.verify(signed(url=behind_proxy), [NEW]).key_id == "new"
    assert reason_of(signed(url=behind_proxy), [NEW], SquareAdapter.configure()) == "no_match"
    assert reason_of(signed(url=URL + "/"), [NEW], SquareAdapter.configure()) == "no_match"
    with pytest.raises(ValueError, match="publicUrl"):
        SquareAdapter.configure().sign(TestRequest(headers={}, body=BODY), NEW, NOW)


@pytest.mark.parametrize("options", [{"publicUrl": "/hooks/acme/square"}, {"publicUrl": URL + "#x"}, {"url": URL}])
def test_options_are_validated(options: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        SquareAdapter.configure(options)


def test_missing_header_and_no_sha1_fallback() -> None:
    legacy = base64.b64encode(hmac.new(NEW.value, URL.encode() + BODY, hashlib.sha1).digest()).decode()
    assert reason_of(inbound({"x-square-signature": legacy}), [NEW]) == "missing_header"


MALFORMED = {
    "empty": "",
    "truncated": GOOD[:-4],
    "over-long": base64.b64encode(b"x" * 33).decode(),
    "unpadded": GOOD.rstrip("="),
    "prefixed": "sha256=" + GOOD,
    "hex": base64.b64decode(GOOD).hex(),
    "sha1 length": base64.b64encode(b"x" * 20).decode(),
    "urlsafe": base64.urlsafe_b64encode(b"\xfb" * 32).decode(),
    "surrounding space": f" {GOOD}",
    "non-ascii": GOOD[:-2] + "é=",
    "thousands of signatures": ",".join([GOOD] * 5000),
}


@pytest.mark.parametrize("signature", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(signature: str) -> None:
    assert reason_of(signed(signature), [NEW]) == "malformed_signature"


def test_square_signs_no_timestamp_and_has_no_handshake() -> None:
    assert ADAPTER.verify(signed(), [NEW]).signed_at is None
    assert ADAPTER.handshake(signed(), [NEW]) is None
    test_event = orjson.dumps({**EVENT, "type": "webhooks.test_notification"})
    assert ADAPTER.handshake(signed(reference(NEW, URL, test_event), test_event), [NEW]) is None


def test_normalize_payment_updated() -> None:
    [event] = ADAPTER.normalize(signed())
    assert event.id == "13b867cf-db3d-4b1c-90b6-2f32a9d78124"
    assert event.type == "square.payment.updated"
    assert event.subject == "KkAkhdMsgzn59SM8A89WgKwekxLZY"
    assert event.time == datetime(2020, 2, 6, 21, 27, 34, 308_000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_reads_nanosecond_times_and_tolerates_missing_subject() -> None:
    body = orjson.dumps({**EVENT, "created_at": "2022-07-13T20:30:59.037339943Z", "data": {"id": 5}})
    [event] = ADAPTER.normalize(signed(body=body))
    assert (event.subject, event.time) == (None, datetime(2022, 7, 13, 20, 30, 59, 37339, tzinfo=UTC))
    [event] = ADAPTER.normalize(signed(body=orjson.dumps({**EVENT, "created_at": "yesterday", "data": None})))
    assert (event.subject, event.time) == (None, None)


@pytest.mark.parametrize("missing", ["event_id", "type"])
def test_normalize_needs_event_id_and_type(missing: str) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(body=orjson.dumps({k: v for k, v in EVENT.items() if k != missing})))


HOSTILE = [b"", b"[]", b'{"event_id": NaN}', b'{"a": 1e999}', b"\xc3\x28", b'{"a":' * 3000, b'{"event_id":"\\udc00"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_payment_updated_event() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.time) == ("square.payment.updated", datetime.fromtimestamp(NOW, UTC))
    assert event.subject == orjson.loads(sample.body)["data"]["object"]["payment"]["id"]
    assert event.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[0].id


@settings(max_examples=150)
@given(body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64))
def test_sign_is_the_documented_algorithm_for_any_body_and_key(body: bytes, key: bytes) -> None:
    secret = SigningSecret("k", key)
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers
    assert headers["x-square-hmacsha256-signature"] == reference(secret, URL, body)
