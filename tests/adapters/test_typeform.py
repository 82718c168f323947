"""Typeform adapter: reference vectors, the reference algorithm, malformed headers, normalization.

The rules every provider keeps are proven for `typeform` by test_conformance.py."""

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

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks.typeform import TypeformAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("typeform")
ADAPTER = TypeformAdapter.configure()
NEW = SigningSecret("new", b"new webhook secret")
EVENT: dict[str, Any] = {
    "event_id": "01HGSV1ZAVX6YFZTS0Q8JDT4XK",
    "event_type": "form_response",
    "form_response": {
        "form_id": "lT4Z3j",
        "token": "a3a12ec67a1365927098a606107fac15",
        "submitted_at": "2018-01-18T18:17:02Z",
        "landed_at": "2018-01-18T18:07:02Z",
        "answers": [{"type": "email", "email": "ada@example.com", "field": {"id": "SMEUb7VJz92Q", "type": "email"}}],
    },
}
BODY = orjson.dumps(EVENT)


def reference(secret: SigningSecret, body: bytes) -> str:
    """`Typeform-Signature` as Typeform documents it."""
    return "sha256=" + base64.b64encode(hmac.new(secret.value, body, hashlib.sha256).digest()).decode()


GOOD = reference(NEW, BODY)
SIG = GOOD.removeprefix("sha256=")
inbound = Endpoint("http://hub.test/hooks/acme/tf", BODY)


def signed(signature: str = GOOD, body: bytes = BODY) -> InboundRequest:
    return inbound({"Typeform-Signature": signature}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_reference_vectors_verify_and_are_what_sign_produces(vector: dict[str, str]) -> None:
    secret = SigningSecret("ref", vector["secret"].encode())
    body = vector["payload"].encode()
    assert ADAPTER.verify(signed(vector["signature"], body), [secret]) == Verification(
        "hmac-sha256", "ref", None, base64.b64decode(vector["signature"].removeprefix("sha256="))
    )
    assert (
        ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers["Typeform-Signature"]
        == (vector["signature"])
    )


def test_an_x_prefixed_header_is_not_read() -> None:
    assert reason_of(inbound({"X-Typeform-Signature": GOOD}), [NEW]) == "missing_header"


MALFORMED = {
    "empty": "",
    "prefix only": "sha256=",
    "no prefix": SIG,
    "prefix case": "SHA256=" + SIG,
    "sha1 prefix": "sha1=" + SIG,
    "truncated": GOOD[:-4],
    "over-long": "sha256=" + base64.b64encode(b"x" * 33).decode(),
    "unpadded": GOOD.rstrip("="),
    "hex instead of base64": "sha256=" + base64.b64decode(SIG).hex(),
    "urlsafe": "sha256=" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),
    "space inside": GOOD[:12] + " " + GOOD[13:],
    "non-ascii": GOOD[:-2] + "é=",
    "thousands of signatures": ",".join([GOOD] * 5000),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str) -> None:
    assert reason_of(signed(header), [NEW]) == "malformed_signature"


def test_typeform_signs_no_timestamp_and_has_no_handshake() -> None:
    assert ADAPTER.verify(signed(), [NEW]).signed_at is None
    assert ADAPTER.replay_window_s is None
    assert ADAPTER.handshake(signed(), [NEW]) is None


def test_normalize_form_response() -> None:
    [event] = ADAPTER.normalize(signed())
    assert event.id == "01HGSV1ZAVX6YFZTS0Q8JDT4XK"
    assert event.type == "typeform.form_response"
    assert event.subject == "lT4Z3j"
    assert event.time == datetime(2018, 1, 18, 18, 17, 2, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize("response", [None, [], {"form_id": 7, "submitted_at": "2018-01-18"}, {"submitted_at": 1}])
def test_normalize_partial_response_without_form_or_time(response: object) -> None:
    body = orjson.dumps({**EVENT, "event_type": "form_response_partial", "form_response": response})
    [event] = ADAPTER.normalize(signed(reference(NEW, body), body))
    assert (event.type, event.subject, event.time) == ("typeform.form_response_partial", None, None)


@pytest.mark.parametrize("missing", ["event_id", "event_type"])
def test_normalize_needs_event_id_and_type(missing: str) -> None:
    body = orjson.dumps({k: v for k, v in EVENT.items() if k != missing})
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(reference(NEW, body), body))


HOSTILE = [b"", b"[1, 2]", b'{"event_id": NaN}', b'{"a": 1e999}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_form_response() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.time) == (
        "typeform.form_response",
        "lT4Z3j",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert event.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[0].id


@settings(max_examples=150)
@given(body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64))
def test_sign_is_the_reference_for_any_body_and_key(body: bytes, key: bytes) -> None:
    secret = SigningSecret("k", key)
    assert ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers["Typeform-Signature"] == reference(
        secret, body
    )
