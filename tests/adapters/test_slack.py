"""Slack adapter: the docs' worked example and slack_sdk vectors, malformed headers, handshakes, normalization.

The rules every provider keeps are proven for `slack` by test_conformance.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.slack import SlackAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("slack")
ADAPTER = SlackAdapter.configure()
NEW = SigningSecret("new", b"8f742231b10e8888abcd99yyyzzz85a5")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
BODY = orjson.dumps(
    {
        "token": "XXYYZZ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {"type": "app_mention", "user": "U061F7AUR", "text": "<@U0LAN0Z89> hi", "channel": "C0LAN2Q65"},
        "type": "event_callback",
        "event_id": "Ev08MFMKH6",
        "event_time": 1234567890,
    }
)


def slack_signature(secret: SigningSecret, timestamp: int | str, body: bytes) -> str:
    """`X-Slack-Signature` computed independently: `v0=` + hex HMAC-SHA256 of `v0:{ts}:{body}`."""
    return "v0=" + hmac.new(secret.value, f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


GOOD = slack_signature(NEW, NOW, BODY)
inbound = Endpoint("http://hub.test/hooks/acme/slack", BODY)


def delivery(
    body: bytes = BODY, signature: str = GOOD, timestamp: str = str(NOW), content_type: str = JSON
) -> InboundRequest:
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    return inbound(headers, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


def vector_request(vector: dict[str, Any]) -> InboundRequest:
    return delivery(vector["body"].encode(), vector["signature"], str(vector["timestamp"]), vector["content_type"])


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['source']}-{i}" for i, v in enumerate(VECTORS)])
def test_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret, body = SigningSecret("vec", vector["secret"].encode()), vector["body"].encode()
    verification = ADAPTER.verify(vector_request(vector), [secret])
    assert verification == type(verification)("hmac-sha256", "vec", float(vector["timestamp"]))
    signed = ADAPTER.sign(TestRequest(headers={}, body=body), secret, vector["timestamp"] + 0.9)
    assert (
        signed.headers["X-Slack-Signature"] == vector["signature"] == slack_signature(secret, vector["timestamp"], body)
    )
    assert signed.headers["X-Slack-Request-Timestamp"] == str(vector["timestamp"])


def test_a_changed_timestamp_does_not_match() -> None:
    assert reason_of(delivery(timestamp=str(NOW + 1)), [NEW]) == "no_match"


BAD_SIGNATURES = ["", "v0=", GOOD[:-2], GOOD + "00", "v1=" + GOOD[3:], "V0=" + GOOD[3:], GOOD[3:], GOOD.upper()]
BAD_SIGNATURES += [GOOD[:-1] + "g", f"{GOOD},{GOOD}", GOOD[:-1] + "\u00e9"]
BAD_TIMESTAMPS = ["", f"-{NOW}", f"{NOW}.0", f" {NOW}", "9" * 40, f"{NOW}000000", "0x1f"]


@pytest.mark.parametrize(
    ("signature", "timestamp"), [(s, str(NOW)) for s in BAD_SIGNATURES] + [(GOOD, t) for t in BAD_TIMESTAMPS]
)
def test_malformed_headers_are_signature_errors(signature: str, timestamp: str) -> None:
    assert reason_of(delivery(signature=signature, timestamp=timestamp), [NEW]) == "malformed_signature"


def test_slacks_own_window_is_five_minutes() -> None:
    assert ADAPTER.replay_window_s == 300  # the window itself is held by test_conformance.py


CHALLENGE = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
URL_VERIFICATION = orjson.dumps(
    {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": CHALLENGE, "type": "url_verification"}
)


@pytest.mark.parametrize(
    ("body", "content_type", "answer"),
    [(URL_VERIFICATION, JSON, CHALLENGE.encode()), (b"ssl_check=1&token=xyzz0WbapA4vBCDEFasx0q6G", FORM, b"")],
    ids=["url_verification", "ssl_check"],
)
def test_handshakes_are_answered_byte_exactly(body: bytes, content_type: str, answer: bytes) -> None:
    request = delivery(body, slack_signature(NEW, NOW, body), content_type=content_type)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    reply = ADAPTER.handshake(request, [NEW])
    assert reply is not None
    assert (reply.status, reply.content_type, reply.body) == (200, "text/plain", answer)


NOT_HANDSHAKES = [BODY, b'{"type": "app_rate_limited", "challenge": "x"}', b'{"challenge": "abc"}', b"[1]", b"no"]
NOT_FORM_HANDSHAKES = [VECTORS[0]["body"].encode(), VECTORS[2]["body"].encode(), b"ssl_check=0", b"%ff=1"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b, JSON) for b in NOT_HANDSHAKES] + [(b, FORM) for b in [*NOT_FORM_HANDSHAKES, URL_VERIFICATION]],
)
def test_nothing_else_is_a_handshake(body: bytes, content_type: str) -> None:
    assert ADAPTER.handshake(delivery(body, content_type=content_type), [NEW]) is None


@pytest.mark.parametrize("challenge", [None, 7, "", "two words", "x" * 257, "\u00e9t\u00e9"])
def test_url_verification_without_a_usable_challenge_is_a_payload_error(challenge: object) -> None:
    body = orjson.dumps({"type": "url_verification", "challenge": challenge})
    with pytest.raises(PayloadError):
        ADAPTER.handshake(delivery(body), [NEW])


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (delivery(), ("Ev08MFMKH6", "slack.app_mention", "C0LAN2Q65", 1234567890)),
        (vector_request(VECTORS[1]), ("Ev123ABC456", "slack.reaction_added", "C123ABC456", 1465244570)),  # item.channel
    ],
)
def test_normalize_events_api_callbacks(request_: InboundRequest, expected: tuple[str, str, str, int]) -> None:
    [event] = ADAPTER.normalize(request_)
    assert (event.id, event.type, event.subject, event.time) == (
        *expected[:3],
        datetime.fromtimestamp(expected[3], UTC),
    )
    assert orjson.dumps(event.data) == request_.body


def callback(event: dict[str, Any], **outer: Any) -> dict[str, Any]:
    return {"type": "event_callback", "event": event, **outer}


@pytest.mark.parametrize(
    ("body", "event_type", "subject"),
    [
        (callback({"type": "message", "subtype": "message_changed"}), "slack.message.message_changed", None),
        (callback({"type": "user_change", "user": {"id": "U7"}}, team_id="T9"), "slack.user_change", "U7"),
        (callback({"type": "team_rename", "subtype": 3}, team_id="T9"), "slack.team_rename", "T9"),
        ({"type": "app_rate_limited", "team_id": "T9", "minute_rate_limited": 1}, "slack.app_rate_limited", "T9"),
    ],
)
def test_normalize_types_and_subjects(body: dict[str, Any], event_type: str, subject: str | None) -> None:
    raw = orjson.dumps(body)
    [event] = ADAPTER.normalize(delivery(raw))
    assert (event.type, event.subject, event.time) == (event_type, subject, None)
    assert event.id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_normalize_slash_command_form() -> None:
    [event] = ADAPTER.normalize(vector_request(VECTORS[0]))
    assert (event.type, event.subject) == ("slack.slash_command", "G8PSS9T3V")
    assert event.id == "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"  # trigger_id
    assert event.data["command"] == "/webhook-collect"
    assert event.data["text"] == ""


def test_normalize_interactivity_payload() -> None:
    [event] = ADAPTER.normalize(vector_request(VECTORS[2]))
    assert (event.type, event.id, event.subject) == ("slack.block_actions", "12466734323.1395872398", "C0CA5")
    assert event.time == datetime(2019, 1, 25, 14, 26, 57, 840180, tzinfo=UTC)
    assert event.data["actions"][0]["action_id"] == "27S"


HOSTILE_JSON = [
    b"",
    b"[]",
    b'{"type": NaN}',
    b"\xff\xfe",
    b'{"a":' * 3000,
    b'{"type":"\\ud800"}',
    b"{}",
    b'{"type":""}',
]
HOSTILE_JSON += [b'{"type": "event_callback"}', b'{"type": "event_callback", "event": {"type": ""}}']
HOSTILE_FORM = [
    b"%ff=1",
    b"command=%2Fa&command=%2Fb",
    b"text=hello",
    b"payload=not-json",
    b"payload=%5B1%5D",
    b"payload=%7B%22type%22%3A1%7D",
    b"a=1&&b=2",
    b"&".join(b"f%d=1" % i for i in range(100)),
]


@pytest.mark.parametrize(
    ("body", "content_type"), [(b, JSON) for b in HOSTILE_JSON] + [(b, FORM) for b in HOSTILE_FORM]
)
def test_hostile_payloads_are_payload_errors_after_valid_signature(body: bytes, content_type: str) -> None:
    request = delivery(body, slack_signature(NEW, NOW, body), content_type=content_type)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_app_mention_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    assert ADAPTER.handshake(request, [NEW]) is None
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.time) == (
        "slack.app_mention",
        "C0LAN2Q65",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert event.id.startswith("Ev")
    assert event.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[0].id


@settings(max_examples=60)
@given(
    body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64), timestamp=st.integers(0, 10**11)
)
def test_sign_is_slacks_algorithm_for_any_body_key_and_time(body: bytes, key: bytes, timestamp: int) -> None:
    secret = SigningSecret("k", key)
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), secret, timestamp).headers
    assert headers["X-Slack-Signature"] == slack_signature(secret, timestamp, body)
