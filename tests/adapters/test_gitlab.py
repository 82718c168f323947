"""GitLab adapter: the secret token, the Standard Webhooks signing mode, the library, normalization.

The rules every provider keeps are proven for both modes, `gitlab` and `gitlab[standard-webhooks]`, by
test_conformance.py."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.gitlab import GitLabAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("gitlab")
TOKEN = GitLabAdapter.configure()
SIGNED = GitLabAdapter.configure({"mode": "standard-webhooks"})
OLD_TOKEN, NEW_TOKEN = SigningSecret("old", b"old-gitlab-token"), SigningSecret("new", b"new-gitlab-token")
OLD_KEY = SigningSecret("old", b"whsec_" + base64.b64encode(b"o" * 32))
NEW_KEY = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 32))
EVENT_UUID, WEBHOOK_ID = "5b1d1e0a-3a43-4b8e-8f9c-6a1b2c3d4e5f", "d8f0c1a2-7b3e-4c5d-9e6f-0a1b2c3d4e5f"
MERGE_REQUEST: dict[str, Any] = {
    "object_kind": "merge_request",
    "event_type": "merge_request",
    "user": {"name": "Administrator", "username": "root"},
    "project": {"id": 1, "name": "Gitlab Test", "path_with_namespace": "gitlabhq/gitlab-test"},
    "object_attributes": {"id": 99, "iid": 1, "action": "open", "updated_at": "2013-12-03 17:23:34 UTC"},
}
BODY = orjson.dumps(MERGE_REQUEST)
inbound = Endpoint("http://hub.test/hooks/acme/gl", BODY)


def token_delivery(token: str = NEW_TOKEN.value.decode(), body: bytes = BODY) -> InboundRequest:
    headers = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Event-UUID": EVENT_UUID, "X-Gitlab-Token": token}
    return inbound(headers, body)


def lib_signature(secret: SigningSecret, msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature` as the `standardwebhooks` library computes it."""
    return Webhook(secret.value.decode()).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


GOOD = lib_signature(NEW_KEY, WEBHOOK_ID, NOW, BODY)


def signed_delivery(
    signature: str = GOOD, body: bytes = BODY, msg_id: str = WEBHOOK_ID, timestamp: int = NOW
) -> InboundRequest:
    headers = {
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Event-UUID": EVENT_UUID,
        "Idempotency-Key": msg_id,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    return inbound(headers, body)


@pytest.mark.parametrize("vector", VECTORS)
def test_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret, body = SigningSecret("v", vector["secret"].encode()), vector["payload"].encode()
    if vector["mode"] == "token":
        assert TOKEN.verify(inbound({vector["header"]: vector["value"]}, body), [secret]).key_id == "v"
        assert TOKEN.sign(TestRequest(headers={}, body=body), secret, NOW).headers == {
            vector["header"]: vector["value"]
        }
        return
    msg_id, timestamp = vector["webhook_id"], vector["timestamp"]
    verification = SIGNED.verify(signed_delivery(vector["signature"], body, msg_id, timestamp), [secret])
    assert (verification.key_id, verification.signed_at) == ("v", timestamp)
    ours = SIGNED.sign(TestRequest(headers={"webhook-id": msg_id}, body=body), secret, timestamp)
    assert ours.headers["webhook-signature"] == vector["signature"] == lib_signature(secret, msg_id, timestamp, body)


def test_options_are_strict() -> None:
    assert TOKEN.options.mode == "token"
    for bad in ({"mode": "hmac"}, {"mode": "token", "secret": "x"}):
        with pytest.raises(ValidationError):
            GitLabAdapter.configure(bad)


def test_the_token_is_a_static_credential_that_does_not_cover_the_body() -> None:
    verification = TOKEN.verify(token_delivery(), [OLD_TOKEN, NEW_TOKEN])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("token", "new", None)
    assert verification.signature is None  # a static credential is no replay guard
    tampered = token_delivery(body=BODY.replace(b"open", b"close"))
    assert TOKEN.verify(tampered, [NEW_TOKEN, OLD_TOKEN]).key_id == "new"  # the token does not cover the body


@pytest.mark.parametrize(
    "token", ["", "new-gitlab-toke", "new-gitlab-token ", "NEW-GITLAB-TOKEN", "new-gitlab-token" * 1000]
)
def test_wrong_tokens_do_not_match(token: str) -> None:
    assert refusal_reason(TOKEN, token_delivery(token), [NEW_TOKEN]) == "no_match"


def test_token_mode_reads_no_signing_headers_and_no_broken_utf8() -> None:
    assert refusal_reason(TOKEN, signed_delivery(), [NEW_TOKEN]) == "missing_header"
    broken = inbound({"X-Gitlab-Token": "new-gitlab-token\udcff"})
    assert refusal_reason(TOKEN, broken, [NEW_TOKEN]) == "malformed_signature"


def test_signed_mode_reports_the_scheme_key_and_signed_timestamp() -> None:
    verification = SIGNED.verify(signed_delivery(), [OLD_KEY, NEW_KEY])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_our_signature_is_accepted_by_the_standard_webhooks_library() -> None:
    now = time.time()  # the library checks the timestamp against its own clock
    sample = SIGNED.sample(now)
    request = SIGNED.sign(sample, NEW_KEY, now)
    assert request.headers["webhook-id"] == sample.headers["Idempotency-Key"]
    assert Webhook(NEW_KEY.value.decode()).verify(request.body, request.headers)["object_kind"] == "push"


def test_signed_mode_a_changed_timestamp_or_id_does_not_match() -> None:
    assert refusal_reason(SIGNED, signed_delivery(timestamp=NOW + 1), [NEW_KEY]) == "no_match"
    assert refusal_reason(SIGNED, signed_delivery(msg_id=WEBHOOK_ID[:-1] + "0"), [NEW_KEY]) == "no_match"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_signed_mode_needs_every_header_and_ignores_the_token(missing: str) -> None:
    headers = {**dict(signed_delivery().headers), "X-Gitlab-Token": "whsec_ignored"}
    del headers[missing]
    assert refusal_reason(SIGNED, inbound(headers), [NEW_KEY]) == "missing_header"


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [("", str(NOW)), (GOOD[:-4], str(NOW)), (GOOD.rstrip("="), str(NOW)), (GOOD, f"{NOW}.5"), (GOOD, f"{NOW}000000")],
)
def test_signed_mode_malformed_headers(signature: str, timestamp: str) -> None:
    headers = {**dict(signed_delivery().headers), "webhook-signature": signature, "webhook-timestamp": timestamp}
    assert refusal_reason(SIGNED, inbound(headers), [NEW_KEY]) == "malformed_signature"


@pytest.mark.parametrize(
    "value", [b"plain-token", b"whsec_", b"whsec_" + base64.b64encode(b"k" * 8), b"whsec_not*base64*but*long*enough*"]
)
def test_signed_mode_needs_a_whsec_signing_token(value: bytes) -> None:
    with pytest.raises(ValueError, match="the-key") as caught:
        SIGNED.check_secret(SigningSecret("the-key", value))
    if hidden := value.decode().removeprefix("whsec_"):
        assert hidden not in str(caught.value)
    SIGNED.check_secret(NEW_KEY)
    TOKEN.check_secret(SigningSecret("any", value))  # token mode takes any non-empty token
    with pytest.raises(ValueError, match="k1"):
        TOKEN.check_secret(SigningSecret("k1", b""))


def test_normalize_merge_request_in_both_modes_and_no_handshake() -> None:
    for adapter, request, delivery_id in (
        (TOKEN, token_delivery(), EVENT_UUID),
        (SIGNED, signed_delivery(), WEBHOOK_ID),
    ):
        assert adapter.handshake(request, [NEW_TOKEN, NEW_KEY]) is None
        [event] = adapter.normalize(request)
        assert (event.id, event.type, event.subject) == (delivery_id, "gitlab.merge_request", "gitlabhq/gitlab-test")
        assert event.time == datetime(2013, 12, 3, 17, 23, 34, tzinfo=UTC)
        assert orjson.dumps(event.data) == BODY


def test_token_mode_dedupes_on_the_idempotency_key_kept_across_retries() -> None:
    token = NEW_TOKEN.value.decode()
    first = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": EVENT_UUID, "Idempotency-Key": WEBHOOK_ID}
    retry = {**first, "X-Gitlab-Event-UUID": "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"}  # a retry: a new event UUID
    ids = [
        event.id
        for headers in (first, retry)
        for event in TOKEN.normalize(inbound({**headers, "X-Gitlab-Token": token}))
    ]
    assert ids == [WEBHOOK_ID, WEBHOOK_ID]
    [older] = TOKEN.normalize(token_delivery())  # no Idempotency-Key (older GitLab): the event UUID as before
    assert older.id == EVENT_UUID


def test_normalize_system_hook_and_fallbacks() -> None:
    system_hook = {"event_name": "project_create", "created_at": "2012-07-21T07:30:54Z", "path_with_namespace": "a/b"}
    [event] = TOKEN.normalize(inbound({}, orjson.dumps(system_hook)))
    assert (event.type, event.subject) == ("gitlab.project_create", "a/b")
    assert event.time == datetime(2012, 7, 21, 7, 30, 54, tzinfo=UTC)
    assert event.id.startswith("sha256:")
    [odd] = TOKEN.normalize(inbound({}, b'{"object_kind": "note", "object_attributes": {"updated_at": "yesterday"}}'))
    assert (odd.type, odd.subject, odd.time) == ("gitlab.note", None, None)


@pytest.mark.parametrize("body", [b"{}", b'{"object_kind": 3}', b"[]", b"", b'{"a": NaN}', b"\xff"])
def test_normalize_refuses_bodies_without_a_kind(body: bytes) -> None:
    with pytest.raises(PayloadError):
        TOKEN.normalize(token_delivery(body=body))


def test_samples_are_realistic_pushes_that_round_trip() -> None:
    for adapter, secret in ((TOKEN, NEW_TOKEN), (SIGNED, NEW_KEY)):
        sample = adapter.sample(float(NOW))
        assert 400 <= len(sample.body) <= 2000
        assert sample.headers["X-Gitlab-Event-UUID"] != adapter.sample(float(NOW)).headers["X-Gitlab-Event-UUID"]
        request = inbound(adapter.sign(sample, secret, float(NOW)).headers, sample.body)
        assert adapter.verify(request, [secret]).key_id == "new"
        [event] = adapter.normalize(request)
        assert (event.type, event.subject) == ("gitlab.push", "acme/widgets")


@settings(max_examples=60)
@given(
    payload=st.text(min_size=1, max_size=200), key=st.binary(min_size=32, max_size=32), timestamp=st.integers(0, 10**11)
)
def test_signed_mode_signs_what_the_library_signs_for_any_body_key_and_time(
    payload: str, key: bytes, timestamp: int
) -> None:
    secret, body = SigningSecret("k", b"whsec_" + base64.b64encode(key)), payload.encode()
    headers = SIGNED.sign(TestRequest(headers={"webhook-id": WEBHOOK_ID}, body=body), secret, timestamp).headers
    assert headers["webhook-signature"] == lib_signature(secret, WEBHOOK_ID, timestamp, body)
