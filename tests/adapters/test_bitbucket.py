"""Bitbucket adapter: reference vectors, GitHub's header name and format, malformed headers, normalization.

The rules every provider keeps (round trips, rotation, tampering, missing and repeated headers, dedupe
keys, no echo) are proven for `bitbucket` by test_conformance.py.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.bitbucket import BitbucketAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("bitbucket")
ADAPTER = BitbucketAdapter.configure()
NEW = SigningSecret("new", b"new bitbucket secret")
REQUEST_UUID = "3f8c2a4e-6d1b-4f3a-9a7e-2b5c8d9e0f11"
PULL_REQUEST: dict[str, Any] = {
    "pullrequest": {"id": 42, "title": "Add widgets", "state": "OPEN", "updated_on": "2024-05-01T12:34:56.789+00:00"},
    "repository": {"type": "repository", "full_name": "acme/widgets", "name": "widgets"},
    "actor": {"display_name": "Ada Lovelace", "type": "user"},
}
BODY = orjson.dumps(PULL_REQUEST)
SIGNATURE = "sha256=" + hmac.new(NEW.value, BODY, hashlib.sha256).hexdigest()
inbound = Endpoint("http://hub.test/hooks/acme/bb", BODY)


def delivery(body: bytes = BODY, signature: str = SIGNATURE, **extra: str) -> InboundRequest:
    headers = {"X-Event-Key": "pullrequest:created", "X-Request-UUID": REQUEST_UUID, "X-Hub-Signature": signature}
    return inbound({**headers, **extra}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_reference_vectors_verify_and_are_what_sign_produces(vector: dict[str, str]) -> None:
    secret, body = SigningSecret("ref", vector["secret"].encode()), vector["payload"].encode()
    verification = ADAPTER.verify(inbound({"X-Hub-Signature": vector["signature"]}, body), [secret])
    assert (verification.key_id, verification.signed_at) == ("ref", None)
    assert (
        ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers["X-Hub-Signature"] == vector["signature"]
    )


def test_the_header_equals_githubs_sha256_header_for_the_same_inputs() -> None:
    github = vectors("github")[0]
    secret = SigningSecret("k", github["secret"].encode())
    assert ADAPTER.sign(TestRequest(headers={}, body=github["payload"].encode()), secret, NOW).headers == {
        "X-Hub-Signature": github["signature"]
    }


def test_valid_delivery_reports_scheme_key_and_the_signature_for_replay_protection() -> None:
    verification = ADAPTER.verify(delivery(), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", None)
    assert verification.signature == hmac.new(NEW.value, BODY, hashlib.sha256).digest()


def test_githubs_header_name_is_not_read() -> None:
    assert reason_of(inbound({"X-Event-Key": "repo:push", "X-Hub-Signature-256": SIGNATURE}), [NEW]) == "missing_header"


MALFORMED = {
    "empty": "",
    "prefix only": "sha256=",
    "sha1 like GitHub's legacy header": "sha1=" + hmac.new(NEW.value, BODY, hashlib.sha1).hexdigest(),
    "truncated": SIGNATURE[:-2],
    "over-long": SIGNATURE + "00",
    "prefix case": "SHA256=" + SIGNATURE[7:],
    "no prefix": SIGNATURE[7:],
    "uppercase hex": "sha256=" + SIGNATURE[7:].upper(),
    "base64 instead of hex": "sha256=" + "A" * 43 + "=",
    "non-hex": SIGNATURE[:-1] + "g",
    "non-ascii": SIGNATURE[:-1] + "\u00e9",
    "thousands of signatures": ",".join([SIGNATURE] * 5000),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(signature=header), [NEW]) == "malformed_signature"


def test_bitbucket_has_no_handshake() -> None:
    assert ADAPTER.handshake(delivery(), [NEW]) is None


def test_normalize_pull_request_created() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type, event.subject) == (REQUEST_UUID, "bitbucket.pullrequest.created", "acme/widgets")
    assert event.time == datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_data_center_push_and_fallbacks() -> None:
    body = orjson.dumps(
        {
            "eventKey": "repo:refs_changed",
            "date": "2017-09-19T09:58:11+1000",
            "repository": {"slug": "widgets", "project": {"key": "ACME"}},
        }
    )
    request = inbound({"X-Event-Key": "repo:refs_changed", "X-Request-Id": "dc-1"}, body)
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.subject) == ("dc-1", "bitbucket.repo.refs_changed", "ACME/widgets")
    assert event.time == datetime.fromisoformat("2017-09-19T09:58:11+10:00")
    [bare] = ADAPTER.normalize(inbound({"X-Event-Key": "repo:push"}, b'{"repository": 7, "date": "soon"}'))
    assert (bare.id, bare.subject, bare.time) == (
        "sha256:" + hashlib.sha256(b'{"repository": 7, "date": "soon"}').hexdigest(),
        None,
        None,
    )


def test_normalize_needs_the_event_key() -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({"X-Request-UUID": REQUEST_UUID}))


HOSTILE = [b"", b"[]", b'{"a": NaN}', b'{"a": 1e999}', b"\xff", b"[" * 5000 + b"]" * 5000, b'{"a":"\\ud800"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    signed = ADAPTER.sign(TestRequest(headers={"X-Event-Key": "repo:push"}, body=body), NEW, NOW)
    request = inbound(signed.headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_push_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 3000
    assert sample.headers["X-Request-UUID"] != ADAPTER.sample(NOW).headers["X-Request-UUID"]
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.subject) == (
        sample.headers["X-Request-UUID"],
        "bitbucket.repo.push",
        "acme/widgets",
    )
