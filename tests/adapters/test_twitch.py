"""Twitch EventSub adapter: the community vector, RFC 3339 timestamps, malformed headers, the challenge,
revocations. The rules every provider keeps are proven for `twitch` by test_conformance.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.twitch import TwitchAdapter, format_rfc3339, parse_rfc3339
from tests.adapters.harness import Endpoint, refusal_reason, vectors

VECTORS = vectors("twitch")
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
inbound = Endpoint("http://hub.test/hooks/acme/tw", BODY, received_at=NOW)


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


def test_verification_reports_the_scheme_signed_timestamp_and_signature() -> None:
    verification = ADAPTER.verify(delivery(), [OLD, NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)
    assert verification.signature is not None


def test_a_changed_timestamp_or_id_does_not_match() -> None:
    assert reason_of(delivery(stamp=STAMP.replace(".25", ".26")), [NEW]) == "no_match"
    assert reason_of(delivery(msg_id=MSG_ID.replace("b", "c")), [NEW]) == "no_match"


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
    assert ADAPTER.replay_window_s is None  # the hub's window itself is held by test_conformance.py


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
