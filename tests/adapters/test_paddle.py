"""Paddle adapter: vectors from paddle-python-sdk, the SDK's algorithm, malformed headers, the 5 s window,
normalization. The rules every provider keeps are proven for `paddle` by test_conformance.py."""

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
from adapters.webhooks.paddle import PaddleAdapter
from hub.ingress.handler import check_replay_window
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("paddle")
ADAPTER = PaddleAdapter.configure()
OLD = SigningSecret("old", b"pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_old0123456789abcdefghijkl")
NEW = SigningSecret("new", b"pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_new0123456789abcdefghijkl")
EVENT: dict[str, Any] = {
    "event_id": "evt_01hv8x9f2ja1s3kyt6mb2y0n6h",
    "event_type": "transaction.completed",
    "occurred_at": "2024-04-12T10:18:49.621022Z",
    "notification_id": "ntf_01hv8x9f3b2hxzq5gzm3h0w4d9",
    "data": {"id": "txn_01hv8wptq8987qeep44cyrewp9", "status": "completed", "customer_id": "ctm_01hv6y1jedq4p1n0"},
}
BODY = orjson.dumps(EVENT)


def reference_header(body: bytes, secret: SigningSecret, timestamp: int = NOW) -> str:
    """`Paddle-Signature` as the SDK's `calculate_hmac` computes it (stdlib only)."""
    digest = hmac.new(secret.value, f"{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return f"ts={timestamp};h1={digest}"


GOOD = reference_header(BODY, NEW)
H1 = GOOD.split(";")[1]
inbound = Endpoint("http://hub.test/hooks/acme/pd", BODY)


def signed(header: str, body: bytes = BODY) -> InboundRequest:
    return inbound({"Paddle-Signature": header}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_sdk_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("sdk", vector["secret"].encode())
    body = vector["payload"].encode()
    assert reference_header(body, secret, vector["timestamp"]) == vector["header"]
    verification = ADAPTER.verify(signed(vector["header"], body), [secret])
    assert verification == Verification("hmac-sha256", "sdk", float(vector["timestamp"]))
    ours = ADAPTER.sign(TestRequest(headers={}, body=body), secret, vector["timestamp"] + 0.9)
    assert ours.headers["Paddle-Signature"] == vector["header"]


def test_valid_delivery_reports_key_id_and_signed_timestamp() -> None:
    verification = ADAPTER.verify(signed(GOOD), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_several_h1_signatures_during_paddle_side_rotation() -> None:
    old_h1 = reference_header(BODY, OLD).split(";")[1]
    assert ADAPTER.verify(signed(f"ts={NOW};{old_h1};{H1}"), [NEW]).key_id == "new"
    assert ADAPTER.verify(signed(f"ts={NOW};{H1};{old_h1}"), [OLD]).key_id == "old"


def test_a_changed_timestamp_does_not_match() -> None:
    assert reason_of(signed(GOOD.replace(f"ts={NOW}", f"ts={NOW + 1}")), [NEW]) == "no_match"


def test_header_without_h1_is_unsupported() -> None:
    assert reason_of(signed(f"ts={NOW}"), [NEW]) == "unsupported_scheme"


MALFORMED = {
    "empty": "",
    "no timestamp": H1,
    "two timestamps": f"ts={NOW};{GOOD}",
    "negative timestamp": GOOD.replace(f"ts={NOW}", f"ts=-{NOW}"),
    "fractional timestamp": GOOD.replace(f"ts={NOW}", f"ts={NOW}.5"),
    "huge timestamp": GOOD.replace(f"ts={NOW}", "ts=" + "9" * 40),
    "empty h1": f"ts={NOW};h1=",
    "truncated": GOOD[:-2],
    "over-long": GOOD + "00",
    "uppercase hex": f"ts={NOW};h1={H1[3:].upper()}",
    "non-hex": GOOD[:-1] + "z",
    "commas": GOOD.replace(";", ","),
    "space after semicolon": GOOD.replace(";", "; "),
    "trailing semicolon": GOOD + ";",
    "unknown key (the SDK refuses it too)": f"{GOOD};h2={H1[3:]}",
    "t instead of ts": GOOD.replace("ts=", "t="),
    "non-ascii": GOOD[:-1] + "\u00e9",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str) -> None:
    assert reason_of(signed(header), [NEW]) == "malformed_signature"


def test_thousands_of_signatures_are_refused_before_parsing() -> None:
    assert reason_of(signed(f"ts={NOW};" + ";".join([H1] * 5000)), [NEW]) == "too_many_signatures"


def test_default_window_is_paddles_five_seconds_both_ways() -> None:
    assert ADAPTER.replay_window_s == 5.0
    signed_at = ADAPTER.verify(signed(GOOD), [NEW]).signed_at
    for received_at in (NOW - 5, NOW, NOW + 5):
        check_replay_window(signed_at, received_at, 5.0)
    with pytest.raises(ReplayWindowError) as stale:
        check_replay_window(signed_at, NOW + 6, 5.0)
    with pytest.raises(ReplayWindowError) as future:
        check_replay_window(signed_at, NOW - 6, 5.0)
    assert (stale.value.reason, future.value.reason) == ("timestamp_too_old", "timestamp_in_future")


def test_paddle_has_no_handshake() -> None:
    assert ADAPTER.handshake(signed(GOOD), [NEW]) is None


def test_normalize_transaction_completed() -> None:
    [event] = ADAPTER.normalize(signed(GOOD))
    assert event.id == "evt_01hv8x9f2ja1s3kyt6mb2y0n6h"
    assert event.type == "paddle.transaction.completed"
    assert event.subject == "ctm_01hv6y1jedq4p1n0"
    assert event.time == datetime(2024, 4, 12, 10, 18, 49, 621022, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize("occurred_at", [None, "yesterday", "2024-04-12T10:18:49", 1712917129])
def test_normalize_subject_falls_back_to_entity_id_and_time_to_none(occurred_at: object) -> None:
    body = orjson.dumps({**EVENT, "occurred_at": occurred_at, "data": {"id": "ctm_01hv6y1jedq4p1n0"}})
    [event] = ADAPTER.normalize(signed(GOOD, body))
    assert (event.subject, event.time) == ("ctm_01hv6y1jedq4p1n0", None)


@pytest.mark.parametrize("missing", ["event_id", "event_type"])
def test_normalize_needs_event_id_and_type(missing: str) -> None:
    body = orjson.dumps({key: value for key, value in EVENT.items() if key != missing})
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(GOOD, body))


HOSTILE = [b"", b'"evt_1"', b'{"event_id": NaN}', b'{"a": 1e999}', b"\xc3\x28", b'{"a":' * 3000, b'{"a":"\\udc00"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_transaction_completed() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.time) == (
        "paddle.transaction.completed",
        "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert event.id.startswith("evt_01")
    assert event.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[0].id


@settings(max_examples=150)
@given(
    payload=st.text(min_size=1, max_size=200), key=st.text(min_size=1, max_size=40), timestamp=st.integers(0, 10**11)
)
def test_sign_is_the_sdks_algorithm_for_any_body_key_and_time(payload: str, key: str, timestamp: int) -> None:
    secret, body = SigningSecret("k", key.encode()), payload.encode()
    header = ADAPTER.sign(TestRequest(headers={}, body=body), secret, timestamp).headers["Paddle-Signature"]
    assert header == reference_header(body, secret, timestamp)
