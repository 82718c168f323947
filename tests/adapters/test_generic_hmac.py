"""Generic HMAC adapter: options validation, every algorithm and encoding, signed content, normalization.

The rules every provider keeps are proven for `hmac` by test_conformance.py, in four configurations
(SHA-256 hex over the body; SHA-256 base64 over id, timestamp and body; SHA-1 base64 and SHA-512 hex
over a timestamp in s and ms and the body)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.generic_hmac import HmacAdapter, HmacOptions
from tests.adapters.harness import NOW, Endpoint
from tests.adapters.harness import refusal_reason as reason_of

NEW = SigningSecret("new", b"new shared secret")
BODY = orjson.dumps({"event": {"id": "dlv_123", "kind": "order.shipped"}, "order": {"id": 42, "total": "19.99"}})
TIMED = {
    "header": "X-Signature",
    "encoding": "base64",
    "timestampHeader": "X-Timestamp",
    "timestampUnit": "ms",
    "signedContent": "{id}:{timestamp}:{body}",
    "idHeader": "X-Delivery",
}
TIMED_ADAPTER = HmacAdapter.configure(TIMED)
PLAIN_ADAPTER = HmacAdapter.configure({"header": "X-Hub-Signature", "prefix": "sha256="})
inbound = Endpoint("http://hub.test/hooks/acme/h", BODY)


def signed(
    adapter: HmacAdapter, secret: SigningSecret = NEW, body: bytes = BODY, headers: dict[str, str] | None = None
) -> InboundRequest:
    request = adapter.sign(TestRequest(headers=headers or {}, body=body), secret, NOW)
    return inbound(request.headers, request.body)


def test_defaults() -> None:
    options = HmacOptions(header="X-Sig")
    assert (options.algorithm, options.encoding, options.prefix, options.signedContent) == (
        "sha256",
        "hex",
        "",
        "{body}",
    )
    assert (options.timestampHeader, options.timestampUnit, options.typePrefix) == (None, "s", "hmac")
    assert HmacAdapter.options_model is HmacOptions


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "header"),
        ({"header": "X Sig"}, "header"),
        ({"header": "X-Sig", "algorithm": "md5"}, "algorithm"),
        ({"header": "X-Sig", "encoding": "base32"}, "encoding"),
        ({"header": "X-Sig", "timestampUnit": "us"}, "timestampUnit"),
        ({"header": "X-Sig", "signedContent": "static text"}, "signedContent"),
        ({"header": "X-Sig", "signedContent": "{body}{body}"}, "signedContent"),
        ({"header": "X-Sig", "signedContent": "{nonce}.{body}"}, "signedContent"),
        ({"header": "X-Sig", "signedContent": "{body"}, "signedContent"),
        ({"header": "X-Sig", "signedContent": "{timestamp}.{body}"}, "timestampHeader"),
        ({"header": "X-Sig", "timestampHeader": "X-Ts"}, "timestampHeader"),
        ({"header": "X-Sig", "signedContent": "{id}.{body}"}, "idHeader"),
        ({"header": "X-Sig", "idHeader": "X-Id", "idPath": "id"}, "idPath"),
        ({"header": "X-Sig", "idPath": "a..b"}, "idPath"),
        ({"header": "X-Sig", "typeHeader": "X-Type", "typePath": "type"}, "typePath"),
        ({"header": "X-Sig", "typePrefix": "a*b"}, "typePrefix"),
        ({"header": "X-Sig", "secret": "inline"}, "secret"),
    ],
)
def test_invalid_options_are_rejected_naming_the_field(options: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        HmacAdapter.configure(options)


def test_options_are_frozen() -> None:
    with pytest.raises(ValidationError):
        PLAIN_ADAPTER.options.header = "X-Other"  # type: ignore[misc]


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_every_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    adapter = HmacAdapter.configure({"header": "X-Sig", "algorithm": algorithm, "encoding": encoding, "prefix": "v1:"})
    digest = hmac.new(NEW.value, BODY, algorithm).digest()
    encoded = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    request = inbound({"X-Sig": "v1:" + encoded})
    verification = adapter.verify(request, [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == (f"hmac-{algorithm}", "new", None)
    assert adapter.sign(TestRequest(headers={}, body=BODY), NEW, NOW).headers["X-Sig"] == "v1:" + encoded
    truncated = inbound(
        {"X-Sig": "v1:" + (digest[:-1].hex() if encoding == "hex" else base64.b64encode(digest[:-1]).decode())}
    )
    assert reason_of(adapter, truncated, [NEW]) == "malformed_signature"


def test_github_style_configuration_matches_the_github_vector() -> None:
    secret = SigningSecret("docs", b"It's a Secret to Everybody")
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert PLAIN_ADAPTER.verify(inbound({"X-Hub-Signature": header}, b"Hello, World!"), [secret]).key_id == "docs"


def test_signed_timestamp_and_id() -> None:
    request = signed(TIMED_ADAPTER, headers={"X-Delivery": "dlv_123"})
    content = f"dlv_123:{NOW * 1000}:".encode() + BODY
    assert (
        request.headers["X-Signature"]
        == base64.b64encode(hmac.new(NEW.value, content, hashlib.sha256).digest()).decode()
    )
    verification = TIMED_ADAPTER.verify(request, [NEW])
    assert (verification.scheme, verification.signed_at) == ("hmac-sha256", NOW)


def test_seconds_timestamp() -> None:
    adapter = HmacAdapter.configure(
        {"header": "X-Sig", "timestampHeader": "X-Ts", "signedContent": "{timestamp}.{body}"}
    )
    request = signed(adapter)
    assert request.headers["X-Ts"] == str(NOW)
    assert adapter.verify(request, [NEW]).signed_at == NOW


def test_a_changed_timestamp_or_id_does_not_match() -> None:
    request = signed(TIMED_ADAPTER)
    for name in ("X-Timestamp", "X-Delivery"):
        changed = {**request.headers, name: request.headers[name] + "1"}
        assert reason_of(TIMED_ADAPTER, inbound(changed), [NEW]) == "no_match"


GOOD = signed(PLAIN_ADAPTER).headers["X-Hub-Signature"]
MALFORMED = {
    "empty": ("", "malformed_signature"),
    "prefix only": ("sha256=", "malformed_signature"),
    "wrong prefix": ("sha1=" + GOOD[7:], "malformed_signature"),
    "no prefix": (GOOD[7:], "malformed_signature"),
    "truncated": (GOOD[:-2], "malformed_signature"),
    "over-long": (GOOD + "ab", "malformed_signature"),
    "uppercase hex": ("sha256=" + GOOD[7:].upper(), "malformed_signature"),
    "base64 instead of hex": ("sha256=" + base64.b64encode(bytes.fromhex(GOOD[7:])).decode(), "malformed_signature"),
    "thousands of signatures": (",".join([GOOD] * 5000), "malformed_signature"),
}


@pytest.mark.parametrize(("header", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signatures_are_signature_errors(header: str, reason: str) -> None:
    assert reason_of(PLAIN_ADAPTER, inbound({"X-Hub-Signature": header}), [NEW]) == reason


@pytest.mark.parametrize("timestamp", ["", "1.5", "-1", "0x10", "9" * 20])
def test_malformed_timestamps_are_signature_errors(timestamp: str) -> None:
    headers = {**signed(TIMED_ADAPTER).headers, "X-Timestamp": timestamp}
    assert reason_of(TIMED_ADAPTER, inbound(headers), [NEW]) == "malformed_signature"


@pytest.mark.parametrize(
    ("options", "headers", "expected_id", "expected_type"),
    [
        ({}, {}, "sha256:" + hashlib.sha256(BODY).hexdigest(), "hmac.event"),
        ({"idPath": "event.id", "typePath": "event.kind"}, {}, "dlv_123", "hmac.order.shipped"),
        ({"idPath": "order.id", "typePrefix": "shop"}, {}, "42", "shop.event"),
        ({"idHeader": "X-Id", "typeHeader": "X-Type"}, {"X-Id": "abc", "X-Type": "ping"}, "abc", "hmac.ping"),
        ({"typePath": "order"}, {}, "sha256:" + hashlib.sha256(BODY).hexdigest(), "hmac.event"),
    ],
)
def test_normalize(options: dict[str, str], headers: dict[str, str], expected_id: str, expected_type: str) -> None:
    adapter = HmacAdapter.configure({"header": "X-Sig", **options})
    [event] = adapter.normalize(inbound(headers))
    assert (event.id, event.type, event.subject, event.time) == (expected_id, expected_type, None, None)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize(("options", "headers"), [({"idPath": "event.missing"}, {}), ({"idHeader": "X-Id"}, {})])
def test_normalize_refuses_a_configured_id_that_is_missing(options: dict[str, str], headers: dict[str, str]) -> None:
    with pytest.raises(PayloadError):
        HmacAdapter.configure({"header": "X-Sig", **options}).normalize(inbound(headers))


HOSTILE = [b"", b"null", b'{"a": Infinity}', b'{"a": 1e999}', b"\x80", b"{" * 10000, b'{"a":1}{"b":2}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = signed(PLAIN_ADAPTER, body=body)
    assert PLAIN_ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        PLAIN_ADAPTER.normalize(request)


@pytest.mark.parametrize(
    ("options", "event_type", "hashed_id"),
    [
        (TIMED, "hmac.event", False),
        ({"header": "X-Sig", "idPath": "meta.id", "typePath": "meta.type"}, "hmac.sample.created", False),
        ({"header": "X-Sig", "typeHeader": "X-Event"}, "hmac.sample.created", True),
    ],
)
def test_sample_round_trips_with_ids_and_types_where_the_options_look(
    options: dict[str, Any], event_type: str, hashed_id: bool
) -> None:
    adapter = HmacAdapter.configure(options)
    request = adapter.sign(adapter.sample(NOW), NEW, NOW)
    received = inbound(request.headers, request.body)
    assert adapter.verify(received, [NEW]).key_id == "new"
    [event] = adapter.normalize(received)
    assert event.type == event_type
    assert event.id.startswith("sha256:") is hashed_id
