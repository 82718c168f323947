"""GitHub adapter: the documented vector, verification failures, ping, normalization, round trips."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.github import GitHubAdapter
from tests.adapters.refusals import refusal_reason

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "github.json").read_text())["vectors"]
NOW = 1_700_000_000.0
ADAPTER = GitHubAdapter.configure()
OLD = SigningSecret("old", b"old secret")
NEW = SigningSecret("new", b"new secret")
BODY = orjson.dumps(
    {
        "action": "opened",
        "number": 1347,
        "pull_request": {"id": 1, "number": 1347, "state": "open", "title": "Amazing new feature"},
        "repository": {"id": 1296269, "name": "Hello-World", "full_name": "octocat/Hello-World"},
        "organization": {"login": "octo-org"},
        "sender": {"login": "octocat", "id": 1},
    }
)
SIGNATURE = "sha256=" + hmac.new(NEW.value, BODY, hashlib.sha256).hexdigest()


def inbound(headers: dict[str, str] | Iterable[tuple[str, str]], body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url="http://hub.test/hooks/acme/gh", headers=headers, body=body, received_at=NOW
    )


def delivery(body: bytes = BODY, signature: str = SIGNATURE, **extra: str) -> InboundRequest:
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    return inbound({**headers, "X-Hub-Signature-256": signature, **extra}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_documented_vector_verifies_and_is_what_sign_produces(vector: dict[str, str]) -> None:
    secret = SigningSecret("docs", vector["secret"].encode())
    body = vector["payload"].encode()
    request = inbound({vector["header"]: vector["signature"]}, body)
    assert ADAPTER.verify(request, [secret]).key_id == "docs"
    signed = ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW)
    assert signed.headers[vector["header"]] == vector["signature"]


def test_valid_delivery_is_accepted_with_scheme_and_key_id() -> None:
    verification = ADAPTER.verify(delivery(), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", None)


@pytest.mark.parametrize("signer", [OLD, NEW])
def test_rotation_accepts_either_secret_and_names_it(signer: SigningSecret) -> None:
    signed = ADAPTER.sign(TestRequest(headers={}, body=BODY), signer, NOW)
    assert ADAPTER.verify(inbound(signed.headers, BODY), [OLD, NEW]).key_id == signer.key_id


def test_tampered_body_and_wrong_secret_do_not_match() -> None:
    assert reason_of(delivery(body=BODY.replace(b"opened", b"closed")), [NEW]) == "no_match"
    assert reason_of(delivery(), [OLD]) == "no_match"


def test_missing_header_is_refused_without_sha1_downgrade() -> None:
    signed = ADAPTER.sign(TestRequest(headers={}, body=BODY), NEW, NOW)
    legacy_only = {"X-Hub-Signature": signed.headers["X-Hub-Signature"]}
    assert reason_of(inbound(legacy_only), [NEW]) == "missing_header"


MALFORMED = {
    "empty": "",
    "prefix only": "sha256=",
    "truncated": SIGNATURE[:-2],
    "over-long": SIGNATURE + "00",
    "wrong prefix": "sha1=" + SIGNATURE[7:],
    "prefix case": "SHA256=" + SIGNATURE[7:],
    "no prefix": SIGNATURE[7:],
    "uppercase hex": "sha256=" + SIGNATURE[7:].upper(),
    "non-hex": SIGNATURE[:-1] + "g",
    "space inside": SIGNATURE[:20] + " " + SIGNATURE[21:],
    "thousands of signatures": ",".join([SIGNATURE] * 5000),
    "non-ascii": SIGNATURE[:-1] + "\u00e9",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_headers_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(signature=header), [NEW]) == "malformed_signature"


def test_duplicated_signature_header_is_refused() -> None:
    request = inbound([("X-Hub-Signature-256", SIGNATURE), ("X-Hub-Signature-256", SIGNATURE)])
    assert reason_of(request, [NEW]) == "duplicate_header"


def test_ping_is_a_handshake_and_other_events_are_not() -> None:
    reply = ADAPTER.handshake(inbound({"X-GitHub-Event": "ping"}, b'{"zen":"Keep it logically awesome."}'), [NEW])
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, b'{"handshake":"ping"}', "application/json")
    assert ADAPTER.handshake(delivery(), [NEW]) is None


def test_normalize_pull_request() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert event.id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert event.type == "github.pull_request.opened"
    assert event.subject == "octocat/Hello-World"
    assert event.time is None
    assert orjson.dumps(event.data) == BODY


def test_normalize_falls_back_to_organization_and_body_hash() -> None:
    body = orjson.dumps({"action": "member_added", "organization": {"login": "octo-org"}, "action_count": 1})
    [event] = ADAPTER.normalize(inbound({"X-GitHub-Event": "organization"}, body))
    assert (event.type, event.subject) == ("github.organization.member_added", "octo-org")
    assert event.id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_normalize_without_string_action_or_owner() -> None:
    [event] = ADAPTER.normalize(inbound({"X-GitHub-Event": "push"}, b'{"action": 3, "repository": "x"}'))
    assert (event.type, event.subject) == ("github.push", None)


def test_normalize_needs_the_event_header() -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({}, BODY))


HOSTILE = [b"", b"[1, 2]", b'{"a": NaN}', b'{"a": 1e999}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a":"\\ud800"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={"X-GitHub-Event": "push"}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_push_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    assert sample.headers["X-GitHub-Event"] == "push"
    assert sample.headers["X-GitHub-Delivery"] != ADAPTER.sample(NOW).headers["X-GitHub-Delivery"]
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.id) == (
        "github.push",
        "octo-org/hello-world",
        sample.headers["X-GitHub-Delivery"],
    )


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped (staying in ASCII)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


@given(
    body=st.binary(min_size=1, max_size=300),
    key=st.binary(min_size=1, max_size=64),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_round_trip_and_any_flipped_bit_is_rejected(body: bytes, key: bytes, index: int, bit: int) -> None:
    secret = SigningSecret("k", key)
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers
    assert ADAPTER.verify(inbound(headers, body), [secret]).key_id == "k"
    position = index % len(body)
    tampered = body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound(headers, tampered), [secret])
    bad_signature = {**headers, "X-Hub-Signature-256": flip(headers["X-Hub-Signature-256"], index, bit)}
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound(bad_signature, body), [secret])
