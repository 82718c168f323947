"""Zoom adapter: vectors checked with @zoom/rivet, malformed headers, URL validation, normalization.

The rules every provider keeps are proven for `zoom` by test_conformance.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.zoom import ZoomAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("zoom")
ADAPTER = ZoomAdapter.configure()
OLD = SigningSecret("old", b"old-secret-token-0123456789")
NEW = SigningSecret("new", b"new-secret-token-0123456789")
BODY = orjson.dumps(
    {
        "event": "meeting.ended",
        "payload": {
            "account_id": "AAAAAABBBB_C123456789",
            "object": {"id": 85132423451, "uuid": "4444AAAiAAAAAiAiAiiAii==", "host_id": "z8yCxjabcdEFGHfp8uQ"},
        },
        "event_ts": 1700000000123,
    }
)
VALIDATION = (
    b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}'
)
inbound = Endpoint("http://hub.test/hooks/acme/zm", BODY)


def signed(body: bytes = BODY, secret: SigningSecret = NEW, now: float = NOW) -> dict[str, str]:
    return ADAPTER.sign(TestRequest(headers={}, body=body), secret, now).headers


GOOD = signed()
SIG, TS = GOOD["x-zm-signature"], GOOD["x-zm-request-timestamp"]


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("zoom", vector["secret"].encode())
    body = vector["payload"].encode()
    headers = {"x-zm-request-timestamp": vector["timestamp"], "x-zm-signature": vector["signature"]}
    verification = ADAPTER.verify(inbound(headers, body), [secret])
    assert verification == type(verification)("hmac-sha256", "zoom", float(vector["timestamp"]))
    assert ADAPTER.sign(TestRequest(headers={}, body=body), secret, int(vector["timestamp"]) + 0.9).headers == headers
    reply = ADAPTER.handshake(inbound(headers, body), [secret])
    if "response" in vector:  # rivet's own answer; the field order is not significant to Zoom
        assert reply is not None
        assert orjson.loads(reply.body) == orjson.loads(vector["response"])
    else:
        assert reply is None


def test_valid_request_reports_key_id_and_signed_timestamp() -> None:
    verification = ADAPTER.verify(inbound(GOOD), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_a_changed_timestamp_does_not_match() -> None:
    assert reason_of(inbound({**GOOD, "x-zm-request-timestamp": str(NOW + 1)}), [NEW]) == "no_match"


MALFORMED = {
    "empty": {"x-zm-signature": ""},
    "prefix only": {"x-zm-signature": "v0="},
    "no prefix": {"x-zm-signature": SIG[3:]},
    "other version": {"x-zm-signature": "v1=" + SIG[3:]},
    "prefix case": {"x-zm-signature": "V0=" + SIG[3:]},
    "truncated": {"x-zm-signature": SIG[:-2]},
    "over-long": {"x-zm-signature": SIG + "00"},
    "uppercase hex": {"x-zm-signature": "v0=" + SIG[3:].upper()},
    "non-hex": {"x-zm-signature": SIG[:-1] + "g"},
    "two signatures": {"x-zm-signature": f"{SIG},{SIG}"},
    "non-ascii": {"x-zm-signature": SIG[:-1] + "\u00e9"},
    "empty timestamp": {"x-zm-request-timestamp": ""},
    "negative timestamp": {"x-zm-request-timestamp": f"-{TS}"},
    "fractional timestamp": {"x-zm-request-timestamp": f"{TS}.5"},
    "huge timestamp": {"x-zm-request-timestamp": "9" * 40},
}


@pytest.mark.parametrize("override", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(override: dict[str, str]) -> None:
    assert reason_of(inbound({**GOOD, **override}), [NEW]) == "malformed_signature"


def encrypted(secret: SigningSecret) -> str:
    return hmac.new(secret.value, b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()


@pytest.mark.parametrize(("signer", "used"), [(OLD, OLD), (NEW, NEW), (SigningSecret("x", b"unknown"), OLD)])
def test_url_validation_is_answered_with_the_secret_that_signed_it(signer: SigningSecret, used: SigningSecret) -> None:
    request = inbound(signed(VALIDATION, signer), VALIDATION)
    reply = ADAPTER.handshake(request, [OLD, NEW])
    assert reply is not None
    expected = f'{{"plainToken":"qgg8vlvZRS6UYooatFL8Aw","encryptedToken":"{encrypted(used)}"}}'.encode()
    assert (reply.status, reply.content_type, reply.body) == (200, "application/json", expected)


def test_other_events_are_not_handshakes() -> None:
    assert ADAPTER.handshake(inbound(GOOD), [NEW]) is None
    assert (
        ADAPTER.handshake(inbound({}, b'{"event":"endpoint.url_validated","payload":{"plainToken":"x"}}'), [NEW])
        is None
    )


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"plainToken": ""}, {"plainToken": 7}, {"plainToken": "x" * 257}, "qgg8vlvZRS6UYooatFL8Aw"],
)
def test_url_validation_without_a_usable_token_is_a_payload_error(payload: Any) -> None:
    body = orjson.dumps({"event": "endpoint.url_validation", "payload": payload})
    with pytest.raises(PayloadError):
        ADAPTER.handshake(inbound(signed(body), body), [NEW])


def test_normalize_meeting_ended() -> None:
    [event] = ADAPTER.normalize(inbound(GOOD))
    assert (event.type, event.subject) == ("zoom.meeting.ended", "85132423451")
    assert event.id == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize(
    ("payload", "subject"),
    [
        ({"object": {"uuid": "abc=="}}, "abc=="),
        ({"account_id": "acct", "object": {"id": ""}}, "acct"),
        ({"object": {"id": {"nested": 1}}}, None),
        ("not an object", None),
    ],
)
def test_normalize_subject_fallbacks(payload: Any, subject: str | None) -> None:
    [event] = ADAPTER.normalize(
        inbound({}, orjson.dumps({"event": "user.updated", "payload": payload, "event_ts": "x"}))
    )
    assert (event.subject, event.time) == (subject, None)


@pytest.mark.parametrize("body", [b'{"payload":{}}', b'{"event":""}', b'{"event":5}'])
def test_normalize_needs_the_event_name(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({}, body))


@pytest.mark.parametrize("body", [b"", b"[]", b'{"event": NaN}', b"\xff", b'{"a":[' * 2000, b'{"event":"x"} trailing'])
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(signed(body), body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.handshake(request, [NEW])
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_compact_meeting_started_event_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    assert sample.body == orjson.dumps(orjson.loads(sample.body))  # compact, as Zoom (and rivet) expect
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.time) == ("zoom.meeting.started", datetime.fromtimestamp(NOW, UTC))
    assert event.subject == orjson.loads(sample.body)["payload"]["object"]["id"]
