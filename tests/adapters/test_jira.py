"""Jira adapter: reference vectors, malformed headers, the signature as replay guard, event names, normalization.

The rules every provider keeps (round trips, rotation, tampering, missing and repeated headers, dedupe
keys, no echo) are proven for `jira` by test_conformance.py."""

from __future__ import annotations

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
from adapters.webhooks.jira import JiraAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("jira")
ADAPTER = JiraAdapter.configure()
NEW = SigningSecret("new", b"new jira secret")
WEBHOOK_ID = "a8c3f5e2-9b1d-4c7e-8f6a-2d4b6c8e0f13"
EVENT: dict[str, Any] = {
    "timestamp": 1_700_000_000_123,
    "webhookEvent": "jira:issue_updated",
    "issue_event_type_name": "issue_generic",
    "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Ada Lovelace"},
    "issue": {"id": "10042", "key": "ENG-42", "fields": {"project": {"id": "10000", "key": "ENG"}}},
    "changelog": {"id": "10500", "items": [{"field": "status", "fromString": "To Do", "toString": "In Progress"}]},
}
BODY = orjson.dumps(EVENT)
SIGNATURE = "sha256=" + hmac.new(NEW.value, BODY, hashlib.sha256).hexdigest()
inbound = Endpoint("http://hub.test/hooks/acme/jira", BODY)


def delivery(body: bytes = BODY, signature: str = SIGNATURE, **extra: str) -> InboundRequest:
    headers = {"X-Atlassian-Webhook-Identifier": WEBHOOK_ID, "X-Atlassian-Webhook-Flow": "Primary"}
    return inbound({**headers, "X-Hub-Signature": signature, **extra}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_reference_vectors_verify_and_are_what_sign_produces(vector: dict[str, str]) -> None:
    secret = SigningSecret("docs", vector["secret"].encode())
    body = vector["payload"].encode()
    request = inbound({vector["header"]: vector["signature"]}, body)
    digest = bytes.fromhex(vector["signature"].removeprefix("sha256="))
    assert ADAPTER.verify(request, [secret]) == Verification("hmac-sha256", "docs", None, digest)
    signed = ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW)
    assert signed.headers[vector["header"]] == vector["signature"]


MALFORMED = {
    "empty": "",
    "prefix only": "sha256=",
    "truncated": SIGNATURE[:-2],
    "over-long": SIGNATURE + "00",
    "sha1 prefix": "sha1=" + SIGNATURE[7:47],
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


def test_no_timestamp_is_signed_and_there_is_no_handshake() -> None:
    assert (ADAPTER.scheme.timestamp, ADAPTER.replay_window_s) == (None, None)
    assert ADAPTER.verify(delivery(), [NEW]).signed_at is None
    assert ADAPTER.handshake(delivery(), [NEW]) is None


def test_the_signature_guards_against_a_replay_under_a_new_identifier() -> None:
    """The identifier is unsigned, so the hub also dedupes on the signature the adapter returns."""
    assert ADAPTER.scheme.dedupe_key_signed is False
    replayed = inbound({"X-Atlassian-Webhook-Identifier": "another-id", "X-Hub-Signature": SIGNATURE})
    assert ADAPTER.verify(replayed, [NEW]).signature == ADAPTER.verify(delivery(), [NEW]).signature
    assert ADAPTER.verify(delivery(), [NEW]).signature == bytes.fromhex(SIGNATURE[7:])


def test_normalize_issue_updated() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert event.id == WEBHOOK_ID
    assert event.type == "jira.issue_updated"
    assert event.subject == "ENG-42"
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize(
    ("webhook_event", "event_type"),
    [
        ("jira:issue_created", "jira.issue_created"),
        ("jira:issue_deleted", "jira.issue_deleted"),
        ("jira:version_released", "jira.version_released"),
        ("comment_created", "jira.comment_created"),
        ("sprint_started", "jira.sprint_started"),
        ("jira:worklog_updated", "jira.worklog_updated"),
        ("avatar:created", "jira.avatar.created"),
    ],
)
def test_webhook_event_names_become_types(webhook_event: str, event_type: str) -> None:
    [event] = ADAPTER.normalize(delivery(orjson.dumps({**EVENT, "webhookEvent": webhook_event})))
    assert event.type == event_type


@pytest.mark.parametrize("webhook_event", [None, "", 7, "jira:issue updated", "issue.updated", "jira:", "x" * 65])
def test_missing_or_odd_webhook_event_is_a_payload_error(webhook_event: object) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(delivery(orjson.dumps({**EVENT, "webhookEvent": webhook_event})))


def test_subject_falls_back_to_project_key_and_id_to_body_hash() -> None:
    body = orjson.dumps({"timestamp": "now", "webhookEvent": "project_created", "project": {"id": 1, "key": "OPS"}})
    [event] = ADAPTER.normalize(inbound({}, body))
    assert (event.type, event.subject, event.time) == ("jira.project_created", "OPS", None)
    assert event.id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_no_subject_when_no_issue_or_project_key() -> None:
    body = orjson.dumps({"webhookEvent": "sprint_started", "sprint": {"id": 5}, "issue": {"key": ""}})
    assert ADAPTER.normalize(delivery(body))[0].subject is None


HOSTILE = [b"", b"[1, 2]", b'{"a": NaN}', b'{"a": 1e999}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a":"\\ud800"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_issue_update_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 3000
    webhook_id = sample.headers["X-Atlassian-Webhook-Identifier"]
    assert webhook_id != ADAPTER.sample(NOW).headers["X-Atlassian-Webhook-Identifier"]
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.subject, event.time) == (
        webhook_id,
        "jira.issue_updated",
        "ENG-42",
        datetime.fromtimestamp(NOW, UTC),
    )


@settings(max_examples=150)
@given(body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64))
def test_sign_is_hmac_sha256_of_the_body_for_any_body_and_key(body: bytes, key: bytes) -> None:
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), SigningSecret("k", key), NOW).headers
    assert headers["X-Hub-Signature"] == "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
