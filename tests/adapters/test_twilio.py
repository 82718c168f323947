"""Twilio adapter: the documented and SDK vectors, the public URL option, JSON bodies bound by their hash,
malformed headers, normalization. The rules every provider keeps (for form callbacks, where a flip that
decodes to the same parameters is the same signed content) are proven for `twilio` by test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.twilio import TwilioAdapter, compute_signature
from tests.adapters.harness import NOW, Endpoint, flip, refusal_reason, vectors

VECTORS = vectors("twilio")
PUBLIC = "https://hooks.example.com/hooks/acme/tw"
ADAPTER = TwilioAdapter.configure()
NEW = SigningSecret("new", b"4e3b1f0c9d8a7b6c5d4e3f2a1b0c9d8e")
SID = "SM1f2e3d4c5b6a79880123456789abcdef"
PARAMS = parse_qsl(
    f"AccountSid=AC0123456789abcdef0123456789abcdef&MessageSid={SID}&MessageStatus=delivered&SmsSid={SID}"
    "&SmsStatus=delivered&From=%2B14155550100&To=%2B14155550199&ApiVersion=2010-04-01"
)
BODY = urlencode(PARAMS).encode()
TOKEN = "3f9a2c1e-idempotency"
inbound = Endpoint(PUBLIC, BODY)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def signature(
    secret: SigningSecret, url: str = PUBLIC, params: list[tuple[str, str]] = PARAMS, alg: str = "sha1"
) -> str:
    return b64(compute_signature(secret.value, url, params, alg))


def delivery(sig: str | None = None, body: bytes = BODY, url: str = PUBLIC, **extra: str) -> InboundRequest:
    headers = {
        "I-Twilio-Idempotency-Token": TOKEN,
        "X-Twilio-Signature": signature(NEW) if sig is None else sig,
        **extra,
    }
    return inbound(headers, body, url=url)


def reason_of(request: InboundRequest, secrets: list[SigningSecret], adapter: TwilioAdapter = ADAPTER) -> str:
    return refusal_reason(adapter, request, secrets)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_published_and_sdk_vectors_verify(vector: dict[str, Any]) -> None:
    secret = SigningSecret("vec", vector["secret"].encode())
    request = inbound(vector["headers"], vector["body"].encode(), url=vector["url"])
    algorithm = "sha256" if "X-Twilio-Webhooks-Signature-Settings" in vector["headers"] else "sha1"
    signature = base64.b64decode(vector["headers"]["X-Twilio-Signature"])  # kept as the replay key
    assert ADAPTER.verify(request, [secret]) == Verification(f"hmac-{algorithm}", "vec", None, signature)
    assert ADAPTER.normalize(request)


@pytest.mark.parametrize("vector", [v for v in VECTORS if "twilio-ruby" in v["name"]], ids=["voice", "sms"])
def test_sign_reproduces_the_real_deliveries(vector: dict[str, Any]) -> None:
    adapter = TwilioAdapter.configure({"publicUrl": vector["url"]})
    signed = adapter.sign(
        TestRequest(headers={}, body=vector["body"].encode()), SigningSecret("v", vector["secret"].encode()), NOW
    )
    assert signed.headers["X-Twilio-Signature"] == vector["headers"]["X-Twilio-Signature"]


def test_documented_example_signature_is_computed_exactly() -> None:
    [vector] = [v for v in VECTORS if "docs" in v["name"]]
    params = parse_qsl(vector["body"])
    assert signature(SigningSecret("d", b"12345"), vector["url"], params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_shared_key_sha256_is_named_by_the_settings_header() -> None:
    settings_header = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_01,algorithm=HMAC_SHA256"}
    good = delivery(signature(NEW, alg="sha256"), **settings_header)
    assert ADAPTER.verify(good, [NEW]).scheme == "hmac-sha256"
    assert reason_of(delivery(signature(NEW, alg="sha256")), [NEW]) == "malformed_signature"
    assert reason_of(delivery(**settings_header), [NEW]) == "malformed_signature"
    unknown = {"X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA512"}
    assert reason_of(delivery(**unknown), [NEW]) == "unsupported_scheme"
    no_algorithm = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_01"}
    assert ADAPTER.verify(delivery(**no_algorithm), [NEW]).scheme == "hmac-sha1"


def test_public_url_option_replaces_what_a_proxy_rewrote() -> None:
    behind_proxy = "http://10.0.0.7:8080/hooks/acme/tw?tenant=acme"
    sig = signature(NEW, PUBLIC + "?tenant=acme")
    assert reason_of(delivery(sig, url=behind_proxy), [NEW]) == "no_match"
    adapter = TwilioAdapter.configure({"publicUrl": PUBLIC})
    assert adapter.verify(delivery(sig, url=behind_proxy), [NEW]).key_id == "new"
    assert reason_of(delivery(sig, url="http://10.0.0.7:8080/hooks/acme/tw?tenant=other"), [NEW], adapter) == "no_match"


BAD_URLS = ["hooks.example.com/tw", "ftp://h.example/tw", PUBLIC + "?a=1", PUBLIC + "#rc=5", "https://u:p@h.example/"]


@pytest.mark.parametrize(
    "options", [*({"publicUrl": url} for url in [*BAD_URLS, "https://" + "h" * 2048]), {"publicURL": PUBLIC}]
)
def test_bad_options_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TwilioAdapter.configure(options)


def test_sign_needs_the_public_url() -> None:
    with pytest.raises(ValueError, match="publicUrl"):
        ADAPTER.sign(ADAPTER.sample(NOW), NEW, NOW)


def test_an_added_parameter_or_another_url_does_not_match() -> None:
    assert reason_of(delivery(body=BODY + b"&Extra=1"), [NEW]) == "no_match"
    assert reason_of(delivery(url=PUBLIC + "?x=1"), [NEW]) == "no_match"
    assert reason_of(delivery(url=PUBLIC.replace("acme", "evil")), [NEW]) == "no_match"


def test_json_body_is_bound_by_its_signed_hash() -> None:
    body = b'{"CallSid":"CA1234567890ABCDE","CallStatus":"completed"}'
    url = f"{PUBLIC}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    good = delivery(signature(NEW, url, []), body=body, url=url)
    assert ADAPTER.verify(good, [NEW]).key_id == "new"
    assert reason_of(delivery(signature(NEW, url, []), body=body + b" ", url=url), [NEW]) == "no_match"
    other = f"{PUBLIC}?bodySHA256={hashlib.sha256(body + b' ').hexdigest()}"
    assert reason_of(delivery(signature(NEW, url, []), body=body + b" ", url=other), [NEW]) == "no_match"
    digest = hashlib.sha256(body).hexdigest()
    for bad_url in (f"{PUBLIC}?bodySHA256={digest.upper()}", url[:-1], url + "&bodySHA256=" + digest):
        assert reason_of(delivery(signature(NEW, bad_url, []), body=body, url=bad_url), [NEW]) == "malformed_signature"


MALFORMED = {
    "empty": "",
    "hex instead of base64": compute_signature(NEW.value, PUBLIC, PARAMS, "sha1").hex(),
    "unpadded": signature(NEW).rstrip("="),
    "sha256 length": b64(b"x" * 32),
    "truncated": signature(NEW)[:-4],
    "prefixed": "sha1=" + signature(NEW),
    "non-ascii": signature(NEW)[:-1] + "\u00e9",
    "thousands of signatures": ",".join([signature(NEW)] * 5000),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_headers_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(header), [NEW]) == "malformed_signature"


@pytest.mark.parametrize("body", [b"a=1&&b=2", b"novalue", b"a=%FF", b"a=\xc3\xa9", b"a=1&"])
def test_a_body_that_is_not_a_form_cannot_be_verified(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.verify(delivery(body=body), [NEW])


def test_normalize_message_status_callback_and_no_handshake() -> None:
    assert ADAPTER.handshake(delivery(), [NEW]) is None
    assert (ADAPTER.scheme.handshake, ADAPTER.scheme.timestamp, ADAPTER.replay_window_s) == (None, None, None)
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type, event.subject, event.time) == (TOKEN, "twilio.message.delivered", SID, None)
    assert event.data == dict(PARAMS)


def test_normalize_call_status_with_time_repeated_params_and_no_token() -> None:
    params = [("CallSid", "CA42"), ("CallStatus", "In-Progress"), ("Timestamp", "Tue, 14 Nov 2023 22:13:20 +0000")]
    body = urlencode([*params, ("Digits", "1"), ("Digits", "2")]).encode()
    [event] = ADAPTER.normalize(inbound({}, body))
    assert (event.id, event.type, event.subject) == (
        "sha256:" + hashlib.sha256(body).hexdigest(),
        "twilio.call.in-progress",
        "CA42",
    )
    assert event.time == datetime.fromtimestamp(NOW, UTC)
    assert event.data["Digits"] == ["1", "2"]


@pytest.mark.parametrize(
    ("query", "event_type", "subject"),
    [
        ("RecordingSid=RE1&CallSid=CA1&RecordingStatus=completed", "twilio.recording.completed", "RE1"),
        ("ConferenceSid=CF1&StatusCallbackEvent=participant-join", "twilio.conference.participant-join", "CF1"),
        ("SmsSid=SM1&SmsStatus=received&Body=hi", "twilio.message.received", "SM1"),
        ("CallSid=CA1&CallStatus=weird+status%21", "twilio.call", "CA1"),
        ("Foo=bar", "twilio.callback", None),
        ("", "twilio.callback", None),
    ],
)
def test_normalize_types(query: str, event_type: str, subject: str | None) -> None:
    [event] = ADAPTER.normalize(inbound({}, query.encode()))
    assert (event.type, event.subject) == (event_type, subject)


def test_normalize_json_callback() -> None:
    body = b'{"MessageSid":"SM9","MessageStatus":"sent","Timestamp":"not a date"}'
    url = f"{PUBLIC}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    [event] = ADAPTER.normalize(inbound({}, body, url=url))
    assert (event.type, event.subject, event.time) == ("twilio.message.sent", "SM9", None)
    assert orjson.dumps(event.data) == body


@pytest.mark.parametrize("body", [b"", b"[1]", b'{"a": NaN}', b"\xff", b'{"a":' * 3000])
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    url = f"{PUBLIC}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    request = delivery(signature(NEW, url, []), body=body, url=url)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_status_callback_that_round_trips() -> None:
    adapter = TwilioAdapter.configure({"publicUrl": PUBLIC})
    sample = adapter.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(adapter.sign(sample, NEW, NOW).headers, sample.body)
    assert adapter.verify(request, [NEW]).key_id == "new"
    [event] = adapter.normalize(request)
    assert event.id == sample.headers["I-Twilio-Idempotency-Token"]
    assert event.type == "twilio.message.delivered"
    assert event.subject == event.data["MessageSid"]
    assert str(event.subject).startswith("SM")


@settings(max_examples=150)
@given(
    body=st.binary(min_size=1, max_size=300),
    key=st.binary(min_size=1, max_size=40),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_json_round_trip_and_any_flipped_bit_is_rejected(body: bytes, key: bytes, index: int, bit: int) -> None:
    secret, digest = SigningSecret("k", key), hashlib.sha256(body).hexdigest()
    url = f"{PUBLIC}?bodySHA256={digest}"
    sig = signature(secret, url, [])
    assert ADAPTER.verify(delivery(sig, body, url), [secret]).key_id == "k"
    position = index % len(body)
    tampered = body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery(sig, tampered, url), [secret])
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery(sig, body, f"{PUBLIC}?bodySHA256={flip(digest, index, bit)}"), [secret])
    with pytest.raises(SignatureError):
        ADAPTER.verify(delivery(flip(sig, index, bit), body, url), [secret])
