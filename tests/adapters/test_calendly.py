"""Calendly adapter: reference vectors, the documented algorithm, malformed headers, the 3-minute window,
normalization. The rules every provider keeps are proven for `calendly` by test_conformance.py."""

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
from adapters.errors import PayloadError, ReplayWindowError
from adapters.webhooks.calendly import CalendlyAdapter
from hub.ingress.handler import check_replay_window
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("calendly")
ADAPTER = CalendlyAdapter.configure()
NEW = SigningSecret("new", b"new-calendly-signing-key-0123456789")
INVITEE = "https://api.calendly.com/scheduled_events/GBGBDCAADAEDCRZ2/invitees/AAAAAAAAAAAAAAAA"
EVENT: dict[str, Any] = {
    "created_at": "2023-11-14T22:13:20.123456Z",
    "created_by": "https://api.calendly.com/users/AAAAAAAAAAAAAAAA",
    "event": "invitee.created",
    "payload": {"uri": INVITEE, "email": "ada@example.com", "name": "Ada Lovelace", "status": "active"},
}
BODY = orjson.dumps(EVENT)


def reference_header(body: bytes, secret: SigningSecret, timestamp: int = NOW) -> str:
    """The header as Calendly's documented algorithm computes it (stdlib only)."""
    return f"t={timestamp},v1=" + hmac.new(secret.value, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


GOOD = reference_header(BODY, NEW)
inbound = Endpoint("http://hub.test/hooks/acme/cal", BODY)
V1 = GOOD.split(",")[1]


def signed(header: str, body: bytes = BODY) -> InboundRequest:
    return inbound({"Calendly-Webhook-Signature": header}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_reference_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("docs", vector["secret"].encode())
    body = vector["payload"].encode()
    verification = ADAPTER.verify(signed(vector["header"], body), [secret])
    assert verification == Verification("hmac-sha256", "docs", float(vector["timestamp"]))
    ours = ADAPTER.sign(TestRequest(headers={}, body=body), secret, vector["timestamp"] + 0.9)
    assert ours.headers["Calendly-Webhook-Signature"] == vector["header"]


def test_valid_delivery_reports_key_id_and_signed_timestamp() -> None:
    verification = ADAPTER.verify(signed(GOOD), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_unknown_keys_are_ignored() -> None:
    assert ADAPTER.verify(signed(f"{GOOD},v0=ignored"), [NEW]).key_id == "new"


def test_a_changed_timestamp_does_not_match() -> None:
    assert reason_of(signed(GOOD.replace(f"t={NOW}", f"t={NOW - 1}")), [NEW]) == "no_match"


MALFORMED = {
    "empty": ("", "malformed_signature"),
    "no timestamp": (V1, "malformed_signature"),
    "two timestamps": (f"t={NOW},{GOOD}", "malformed_signature"),
    "timestamp in ms": (GOOD.replace(f"t={NOW}", f"t={NOW}000"), "malformed_signature"),
    "fractional timestamp": (GOOD.replace(f"t={NOW}", f"t={NOW}.5"), "malformed_signature"),
    "empty v1": (f"t={NOW},v1=", "malformed_signature"),
    "truncated": (GOOD[:-2], "malformed_signature"),
    "over-long": (GOOD + "00", "malformed_signature"),
    "uppercase hex": (f"t={NOW},v1={V1[3:].upper()}", "malformed_signature"),
    "non-hex": (GOOD[:-1] + "z", "malformed_signature"),
    "semicolons": (GOOD.replace(",", ";"), "malformed_signature"),
    "trailing comma": (GOOD + ",", "malformed_signature"),
    "non-ascii": (GOOD[:-1] + "\u00e9", "malformed_signature"),
    "spaces after commas": (GOOD.replace(",", ", "), "unsupported_scheme"),
    "timestamp only": (f"t={NOW}", "unsupported_scheme"),
    "thousands of signatures": (f"t={NOW}," + ",".join([V1] * 5000), "too_many_signatures"),
}


@pytest.mark.parametrize(("header", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str, reason: str) -> None:
    assert reason_of(signed(header), [NEW]) == reason


def test_default_window_is_the_documented_three_minutes() -> None:
    assert ADAPTER.replay_window_s == 180.0
    signed_at = ADAPTER.verify(signed(GOOD), [NEW]).signed_at
    for received_at in (NOW - 180, NOW, NOW + 180):
        check_replay_window(signed_at, received_at, 180.0)
    with pytest.raises(ReplayWindowError) as stale:
        check_replay_window(signed_at, NOW + 181, 180.0)
    with pytest.raises(ReplayWindowError) as future:
        check_replay_window(signed_at, NOW - 181, 180.0)
    assert (stale.value.reason, future.value.reason) == ("timestamp_too_old", "timestamp_in_future")


def test_calendly_has_no_handshake() -> None:
    assert ADAPTER.handshake(signed(GOOD), [NEW]) is None


def test_normalize_invitee_created() -> None:
    [event] = ADAPTER.normalize(signed(GOOD))
    assert event.id == "sha256:" + hashlib.sha256(BODY).hexdigest()
    assert event.type == "calendly.invitee.created"
    assert event.subject == INVITEE
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_a_retry_has_the_same_id_and_a_cancellation_another() -> None:
    retry = ADAPTER.normalize(signed(reference_header(BODY, NEW, NOW + 60)))[0]
    canceled = orjson.dumps({**EVENT, "event": "invitee.canceled", "created_at": "2023-11-15T08:00:00.000000Z"})
    assert retry.id == ADAPTER.normalize(signed(GOOD))[0].id
    assert ADAPTER.normalize(signed(GOOD, canceled))[0].id != retry.id


@pytest.mark.parametrize(
    "body",
    [
        {"event": "contact.created", "created_at": "2023-11-14T22:13:20", "payload": {"uri": ""}},
        {"event": "contact.created", "created_at": 1700000000, "payload": [INVITEE]},
        {"event": "contact.created", "created_at": "tomorrow", "payload": {"uri": 3}},
    ],
)
def test_normalize_without_usable_subject_or_time(body: dict[str, Any]) -> None:
    [event] = ADAPTER.normalize(signed(GOOD, orjson.dumps(body)))
    assert (event.type, event.subject, event.time) == ("calendly.contact.created", None, None)


@pytest.mark.parametrize("event", [None, "", 7])
def test_normalize_needs_the_event_name(event: object) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(GOOD, orjson.dumps({**EVENT, "event": event})))


HOSTILE = [b"", b"[]", b'{"event": NaN}', b'{"t": -1e400}', b"\xed\xa0\x80", b'{"a":[' * 2000, b'{"event": "x"} 1']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_invitee_created() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 3000
    assert sample.body != ADAPTER.sample(NOW).body
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.time) == ("calendly.invitee.created", datetime.fromtimestamp(NOW, UTC))
    assert event.subject is not None
    assert event.subject.startswith("https://api.calendly.com/scheduled_events/")


@settings(max_examples=150)
@given(
    payload=st.text(min_size=1, max_size=200), key=st.text(min_size=1, max_size=40), timestamp=st.integers(0, 10**11)
)
def test_sign_is_the_documented_algorithm_for_any_body_key_and_time(payload: str, key: str, timestamp: int) -> None:
    secret, body = SigningSecret("k", key.encode()), payload.encode()
    header = ADAPTER.sign(TestRequest(headers={}, body=body), secret, timestamp).headers["Calendly-Webhook-Signature"]
    assert header == reference_header(body, secret, timestamp)
