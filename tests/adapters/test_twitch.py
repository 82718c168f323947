"""Twitch EventSub adapter: the community vector, failures, the challenge, revocations, round trips."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, ReplayWindowError, SignatureError
from adapters.webhooks.twitch import TwitchAdapter, format_rfc3339, parse_rfc3339
from hub.ingress.handler import check_replay_window
from tests.adapters.refusals import refusal_reason

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "twitch.json").read_text())["vectors"]
NOW = 1_700_000_000.25
STAMP = "2023-11-14T22:13:20.250000000Z"
ADAPTER = TwitchAdapter.configure()
OLD = SigningSecret("old", b"old-twitch-secret")
NEW = SigningSecret("new", b"new-twitch-secret")
MSG_ID = "befa7b53-d79d-478f-86b9-120f112b044e"
SUBSCRIPTION: dict[str, Any] = {
    "id": "f1c2a387-161a-49f9-a165-0f21d7a4e1c4",
    "type": "channel.follow",
    "version": "2",
    "status": "enabled",
    "cost": 0,
    "condition": {"broadcaster_user_id": "12826", "moderator_user_id": "12826"},
    "transport": {"method": "webhook", "callback": "https://example.com/webhooks/callback"},
    "created_at": "2019-11-16T10:11:12.634234626Z",
}
BODY = orjson.dumps({"subscription": SUBSCRIPTION, "event": {"user_id": "1337", "broadcaster_user_id": "12826"}})


def signature(secret: SigningSecret, msg_id: str, timestamp: str, body: bytes) -> str:
    """Twitch's documented scheme, computed independently of the adapter."""
    return "sha256=" + hmac.new(secret.value, msg_id.encode() + timestamp.encode() + body, hashlib.sha256).hexdigest()


GOOD = signature(NEW, MSG_ID, STAMP, BODY)


def inbound(headers: dict[str, str] | Iterable[tuple[str, str]], body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url="http://hub.test/hooks/acme/tw", headers=headers, body=body, received_at=NOW
    )


def headers_of(sig: str = GOOD, msg_id: str = MSG_ID, stamp: str = STAMP, kind: str = "notification") -> dict[str, str]:
    return {
        "Twitch-Eventsub-Message-Id": msg_id,
        "Twitch-Eventsub-Message-Timestamp": stamp,
        "Twitch-Eventsub-Message-Signature": sig,
        "Twitch-Eventsub-Message-Type": kind,
    }


def delivery(sig: str = GOOD, body: bytes = BODY, **fields: str) -> InboundRequest:
    return inbound(headers_of(sig, **fields), body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_vector_verifies_and_is_what_sign_produces(vector: dict[str, str]) -> None:
    secret, body = SigningSecret("v", vector["secret"].encode()), vector["payload"].encode()
    request = inbound(headers_of(vector["signature"], vector["message_id"], vector["timestamp"]), body)
    verification = ADAPTER.verify(request, [secret])
    assert verification.key_id == "v"
    assert verification.signed_at == pytest.approx(datetime(2021, 2, 19, 23, 47, 0, 809151, tzinfo=UTC).timestamp())
    resend = TestRequest(
        {"Twitch-Eventsub-Message-Id": vector["message_id"], "Twitch-Eventsub-Message-Timestamp": vector["timestamp"]},
        body,
    )
    assert ADAPTER.sign(resend, secret, NOW).headers["Twitch-Eventsub-Message-Signature"] == vector["signature"]


def test_sign_stamps_now_with_nanosecond_digits() -> None:
    signed = ADAPTER.sign(TestRequest({"Twitch-Eventsub-Message-Id": MSG_ID}, BODY), NEW, NOW).headers
    assert signed["Twitch-Eventsub-Message-Timestamp"] == STAMP == format_rfc3339(NOW)
    assert signed["Twitch-Eventsub-Message-Signature"] == GOOD


@pytest.mark.parametrize("signer", [OLD, NEW])
def test_rotation_reports_key_signed_timestamp_and_signature(signer: SigningSecret) -> None:
    verification = ADAPTER.verify(delivery(signature(signer, MSG_ID, STAMP, BODY)), [OLD, NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", signer.key_id, NOW)
    assert verification.signature is not None


def test_tampering_and_wrong_secret_do_not_match() -> None:
    assert reason_of(delivery(body=BODY.replace(b"1337", b"1338")), [NEW]) == "no_match"
    assert reason_of(delivery(stamp=STAMP.replace(".25", ".26")), [NEW]) == "no_match"
    assert reason_of(delivery(msg_id=MSG_ID.replace("b", "c")), [NEW]) == "no_match"
    assert reason_of(delivery(), [OLD]) == "no_match"


@pytest.mark.parametrize("missing", ["Id", "Timestamp", "Signature"])
def test_each_signed_header_is_required(missing: str) -> None:
    headers = headers_of()
    del headers[f"Twitch-Eventsub-Message-{missing}"]
    assert reason_of(inbound(headers), [NEW]) == "missing_header"


MALFORMED = {
    "empty signature": {"sig": ""},
    "no prefix": {"sig": GOOD[7:]},
    "sha1 prefix": {"sig": "sha1=" + GOOD[7:]},
    "uppercase hex": {"sig": "sha256=" + GOOD[7:].upper()},
    "truncated": {"sig": GOOD[:-2]},
    "over-long": {"sig": GOOD + "00"},
    "timestamp without zone": {"stamp": "2023-11-14T22:13:20.25"},
    "timestamp as unix seconds": {"stamp": "1700000000"},
    "timestamp with ten fraction digits": {"stamp": "2023-11-14T22:13:20.2500000000Z"},
    "timestamp on february 30": {"stamp": "2023-02-30T22:13:20Z"},
    "timestamp with a space": {"stamp": "2023-11-14 22:13:20Z"},
    "id with a space": {"msg_id": "befa7b53 d79d"},
    "id too long": {"msg_id": "a" * 257},
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(fields: dict[str, str]) -> None:
    assert reason_of(delivery(**fields), [NEW]) == "malformed_signature"


def test_rfc3339_offsets_and_fractions() -> None:
    assert parse_rfc3339("2023-11-14T22:13:20Z", "twitch") == 1_700_000_000
    assert parse_rfc3339("2023-11-15T00:13:20.5+02:00", "twitch") == 1_700_000_000.5
    assert parse_rfc3339("2023-11-14T21:13:20.000000001-01:00", "twitch") == pytest.approx(1_700_000_000 + 1e-9)


def test_the_hubs_stricter_window_applies() -> None:
    """Twitch's own 10 minutes is looser than the hub's 300 s, so the hub's default stands."""
    assert ADAPTER.replay_window_s is None
    signed_at = ADAPTER.verify(delivery(), [NEW]).signed_at
    check_replay_window(signed_at, NOW + 300, 300.0)
    with pytest.raises(ReplayWindowError) as stale:
        check_replay_window(signed_at, NOW + 301, 300.0)
    with pytest.raises(ReplayWindowError) as future:
        check_replay_window(signed_at, NOW - 301, 300.0)
    assert (stale.value.reason, future.value.reason) == ("timestamp_too_old", "timestamp_in_future")


@pytest.mark.parametrize("challenge", ["pogchamp-kappa-360noscope-vohiyo", 'a"quote\\and ünïcödé 🎉', " spaced "])
def test_callback_verification_is_answered_with_the_raw_challenge(challenge: str) -> None:
    body = orjson.dumps({"challenge": challenge, "subscription": {**SUBSCRIPTION, "status": "pending"}})
    request = delivery(signature(NEW, MSG_ID, STAMP, body), body, kind="webhook_callback_verification")
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    reply = ADAPTER.handshake(request, [NEW])
    assert reply is not None
    assert (reply.status, reply.content_type, reply.body) == (200, "text/plain", challenge.encode())


def test_only_the_verification_message_is_a_handshake() -> None:
    assert ADAPTER.handshake(delivery(), [NEW]) is None
    assert ADAPTER.handshake(delivery(kind="revocation"), [NEW]) is None
    body = b'{"challenge": "x"}'
    assert ADAPTER.handshake(delivery(body=body), [NEW]) is None
    with pytest.raises(PayloadError):
        ADAPTER.handshake(delivery(body=b'{"challenge": 7}', kind="webhook_callback_verification"), [NEW])


def test_normalize_notification() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type, event.subject) == (MSG_ID, "twitch.channel.follow", "12826")
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 250000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_revocation_as_an_event() -> None:
    body = orjson.dumps({"subscription": {**SUBSCRIPTION, "status": "authorization_revoked"}})
    [event] = ADAPTER.normalize(delivery(body=body, kind="revocation"))
    assert (event.id, event.type, event.subject) == (MSG_ID, "twitch.revocation.channel.follow", "12826")


@pytest.mark.parametrize("body", [b"{}", b'{"subscription": {"type": ""}}', b"[]", b"", b"\xff", b'{"a": NaN}'])
def test_normalize_needs_a_subscription_type(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(delivery(body=body))


@pytest.mark.parametrize("value", [b"", b"123456789", b"x" * 101])
def test_secrets_must_have_10_to_100_characters(value: bytes) -> None:
    with pytest.raises(ValueError, match="the-key"):
        ADAPTER.check_secret(SigningSecret("the-key", value))
    ADAPTER.check_secret(SigningSecret("ok", b"x" * 10))
    ADAPTER.check_secret(SigningSecret("ok", b"x" * 100))


def test_sample_is_a_realistic_follow_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 400 <= len(sample.body) <= 2000
    assert sample.headers["Twitch-Eventsub-Message-Id"] != ADAPTER.sample(NOW).headers["Twitch-Eventsub-Message-Id"]
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.id) == (
        "twitch.channel.follow",
        "1337",
        sample.headers["Twitch-Eventsub-Message-Id"],
    )


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped (staying in ASCII)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


@settings(max_examples=80)
@given(
    payload=st.binary(min_size=1, max_size=300),
    key=st.binary(min_size=10, max_size=100),
    now=st.floats(0, 4_102_444_800, allow_nan=False),  # to 2100: RFC 3339 keeps microseconds exactly there
    header=st.sampled_from(["Id", "Timestamp", "Signature"]),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_round_trip_and_any_flipped_bit_is_rejected(
    payload: bytes, key: bytes, now: float, header: str, index: int, bit: int
) -> None:
    secret = SigningSecret("k", key)
    headers = ADAPTER.sign(TestRequest({}, payload), secret, now).headers
    assert ADAPTER.verify(inbound(headers, payload), [secret]).signed_at == pytest.approx(now, abs=1e-5)
    position = index % len(payload)
    tampered = payload[:position] + bytes([payload[position] ^ (1 << bit)]) + payload[position + 1 :]
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound(headers, tampered), [secret])
    name = f"Twitch-Eventsub-Message-{header}"
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound({**headers, name: flip(headers[name], index, bit)}, payload), [secret])
