"""GitHub adapter: the documented vector, the SHA-256 header only, malformed headers, ping, normalization.

What every provider must do (round trips, rotation, tampering, missing and repeated headers, dedupe keys)
is proven for `github` by test_conformance.py.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.github import GitHubAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("github")
ADAPTER = GitHubAdapter.configure()
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
inbound = Endpoint("http://hub.test/hooks/acme/gh", BODY)


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
