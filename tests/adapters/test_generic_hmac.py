"""Generic HMAC adapter: options validation, every algorithm and encoding, normalization, round trips."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.generic_hmac import HmacAdapter, HmacOptions
from tests.adapters.refusals import refusal_reason as reason_of

NOW = 1_700_000_000
OLD = SigningSecret("old", b"old shared secret")
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


def inbound(headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url="http://hub.test/hooks/acme/h", headers=headers, body=body, received_at=NOW
    )


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


@pytest.mark.parametrize("signer", [OLD, NEW])
def test_rotation_accepts_either_secret_and_names_it(signer: SigningSecret) -> None:
    assert TIMED_ADAPTER.verify(signed(TIMED_ADAPTER, signer), [OLD, NEW]).key_id == signer.key_id


def test_tampering_and_wrong_secret_do_not_match() -> None:
    request = signed(TIMED_ADAPTER)
    assert reason_of(TIMED_ADAPTER, inbound(request.headers, BODY + b" "), [NEW]) == "no_match"
    assert reason_of(TIMED_ADAPTER, request, [OLD]) == "no_match"
    for name in ("X-Timestamp", "X-Delivery"):
        changed = {**request.headers, name: request.headers[name] + "1"}
        assert reason_of(TIMED_ADAPTER, inbound(changed), [NEW]) == "no_match"


@pytest.mark.parametrize("missing", ["X-Signature", "X-Timestamp", "X-Delivery"])
def test_missing_headers(missing: str) -> None:
    headers = {name: value for name, value in signed(TIMED_ADAPTER).headers.items() if name != missing}
    assert reason_of(TIMED_ADAPTER, inbound(headers), [NEW]) == "missing_header"


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


def test_duplicated_headers_are_refused() -> None:
    headers = list(signed(TIMED_ADAPTER).headers.items())
    for name in ("X-Signature", "X-Timestamp", "X-Delivery"):
        duplicated = [*headers, (name, dict(headers)[name])]
        assert reason_of(TIMED_ADAPTER, inbound(duplicated), [NEW]) == "duplicate_header"


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


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped (staying in ASCII)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


@given(
    body=st.binary(min_size=1, max_size=200),
    key=st.binary(min_size=1, max_size=64),
    algorithm=st.sampled_from(["sha1", "sha256", "sha512"]),
    encoding=st.sampled_from(["hex", "base64"]),
    header=st.sampled_from(["X-Sig", "X-Ts"]),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_round_trip_and_any_flipped_bit_is_rejected(
    body: bytes, key: bytes, algorithm: str, encoding: str, header: str, index: int, bit: int
) -> None:
    options = {
        "header": "X-Sig",
        "algorithm": algorithm,
        "encoding": encoding,
        "prefix": "sig=",
        "timestampHeader": "X-Ts",
    }
    adapter = HmacAdapter.configure({**options, "signedContent": "{timestamp}.{body}"})
    secret = SigningSecret("k", key)
    headers = adapter.sign(TestRequest(headers={}, body=body), secret, NOW).headers
    assert adapter.verify(inbound(headers, body), [secret]).signed_at == NOW
    position = index % len(body)
    with pytest.raises(SignatureError):
        adapter.verify(
            inbound(headers, body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]), [secret]
        )
    with pytest.raises(SignatureError):
        adapter.verify(inbound({**headers, header: flip(headers[header], index, bit)}, body), [secret])
