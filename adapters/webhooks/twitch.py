"""Twitch EventSub (webhook transport): `Twitch-Eventsub-Message-Signature: sha256=<hex>`.

The HMAC-SHA256, keyed with the subscription's secret, covers message id + timestamp + raw body with
no separators, the id and timestamp exactly as sent in their headers. The timestamp is RFC 3339 with
up to nanoseconds; Twitch tells receivers to refuse messages older than 10 minutes, looser than the
hub's 300 s, so the hub's window stands (a connector can widen it with `replayWindow`). A
`webhook_callback_verification` is answered with its `challenge`, verbatim, as text/plain.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from adapters.base import (
    HandshakeReply,
    InboundRequest,
    NoOptions,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import PayloadError, SignatureError
from adapters.fields import required_header, unix_time
from adapters.signing import after_prefix, decode_hex, header_of, hmac_digest, matching_hmac, with_headers

ID_HEADER = "Twitch-Eventsub-Message-Id"
TIMESTAMP_HEADER = "Twitch-Eventsub-Message-Timestamp"
SIGNATURE_HEADER = "Twitch-Eventsub-Message-Signature"
TYPE_HEADER = "Twitch-Eventsub-Message-Type"
PREFIX = "sha256="
VERIFICATION = "webhook_callback_verification"
REVOCATION = "revocation"
SECRET_LENGTHS = range(10, 101)
"""Twitch accepts a subscription secret of 10 to 100 characters."""

_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,256}")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")


class TwitchAdapter(WebhookAdapter[NoOptions]):
    """Twitch EventSub notifications, revocations and callback verifications."""

    name: ClassVar[str] = "twitch"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the subscription secret as UTF-8",
        signed_content=f"{ID_HEADER} + {TIMESTAMP_HEADER} + raw body (no separators)",
        encoding="lowercase hex, prefixed sha256=",
        timestamp=f"{TIMESTAMP_HEADER} header, RFC 3339 with up to nanoseconds",
        dedupe_key=f"{ID_HEADER} header (kept on resends)",
        handshake=f"{TYPE_HEADER}: {VERIFICATION} -> 200 text/plain, the body's challenge verbatim",
        delivery_timeout_s=3.0,
        dedupe_key_signed=True,
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """Twitch takes subscription secrets of 10 to 100 characters."""
        if len(secret.value) not in SECRET_LENGTHS:
            raise ValueError(f"secret {secret.key_id}: a Twitch subscription secret has 10 to 100 characters")

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the signature over id + timestamp + body against every secret."""
        msg_id = request.signed_header(ID_HEADER, self.name)
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        header = request.signed_header(SIGNATURE_HEADER, self.name)
        candidate = decode_hex(after_prefix(header, PREFIX, SIGNATURE_HEADER, self.name), 32, self.name)
        if not _MESSAGE_ID.fullmatch(msg_id):
            raise SignatureError(self.name, "malformed_signature", f"{ID_HEADER} is not 1-256 printable characters")
        signed_at = parse_rfc3339(timestamp, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], signed_content(msg_id, timestamp, request.body))
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at, signature=candidate)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Answer `webhook_callback_verification` with the raw challenge string."""
        if request.header(TYPE_HEADER) != VERIFICATION:
            return None
        challenge = request.json_object().get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise PayloadError("invalid_event", f"a {VERIFICATION} message has no string challenge")
        return HandshakeReply(200, challenge.encode(), "text/plain")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `twitch.<subscription.type>` (`twitch.revocation.<type>` for a revocation)."""
        body = request.json_object()
        subscription = body.get("subscription")
        subscription = subscription if isinstance(subscription, dict) else {}
        kind = subscription.get("type")
        if not isinstance(kind, str) or not kind:
            raise PayloadError("invalid_event", "the message has no subscription.type")
        msg_id = required_header(request, ID_HEADER)
        revoked = request.header(TYPE_HEADER) == REVOCATION
        return [
            NormalizedEvent(
                id=msg_id,
                type=f"{self.name}.{REVOCATION}.{kind}" if revoked else f"{self.name}.{kind}",
                data=orjson.Fragment(request.body),
                subject=_subject(subscription, body.get("event")),
                time=_time(request.header(TIMESTAMP_HEADER)),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `channel.follow` (version 2) notification."""
        msg_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Twitch-Eventsub-Webhooks/1.0",
            ID_HEADER: msg_id,
            "Twitch-Eventsub-Message-Retry": "0",
            TYPE_HEADER: "notification",
            "Twitch-Eventsub-Subscription-Type": "channel.follow",
            "Twitch-Eventsub-Subscription-Version": "2",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_follow(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add the timestamp and signature headers (and a message id if missing).

        A message id or timestamp the request already carries is kept, as Twitch keeps them when it
        resends a message; otherwise the timestamp is `now` in RFC 3339 with nanoseconds.
        """
        msg_id = header_of(request, ID_HEADER) or str(uuid.uuid4())
        timestamp = header_of(request, TIMESTAMP_HEADER) or format_rfc3339(now)
        digest = hmac_digest("sha256", secret.value, signed_content(msg_id, timestamp, request.body))
        return with_headers(
            request, {ID_HEADER: msg_id, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: PREFIX + digest.hex()}
        )


def signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    """What Twitch signs: the id and the timestamp as sent, then the raw body."""
    return (msg_id + timestamp).encode() + body


def parse_rfc3339(value: str, provider: str) -> float:
    """Unix seconds of an RFC 3339 timestamp (`2021-02-19T23:47:00.8091512Z`), else a SignatureError."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise SignatureError(provider, "malformed_signature", f"{TIMESTAMP_HEADER} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        raise SignatureError(provider, "malformed_signature", f"{TIMESTAMP_HEADER} is not a valid time") from None
    offset = 0 if zone == "Z" else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return moment.timestamp() - offset + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)


def format_rfc3339(now: float) -> str:
    """`now` as Twitch writes timestamps: UTC, nine fractional digits (here microseconds, zero-padded)."""
    micros = round(now * 1_000_000)
    moment = datetime.fromtimestamp(micros // 1_000_000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros % 1_000_000:06d}000Z"


def _subject(subscription: dict[str, Any], event: Any) -> str | None:
    """The broadcaster (or user) the subscription's condition names, else the subscription id."""
    condition = subscription.get("condition")
    for container in (condition, event):
        if isinstance(container, dict):
            for key in ("broadcaster_user_id", "to_broadcaster_user_id", "user_id", "client_id"):
                if isinstance(value := container.get(key), str) and value:
                    return value
    value = subscription.get("id")
    return value if isinstance(value, str) and value else None


def _time(timestamp: str | None) -> datetime | None:
    if timestamp is None:
        return None
    try:
        return unix_time(parse_rfc3339(timestamp, TwitchAdapter.name), fractional=True)
    except SignatureError:
        return None


def _follow(now: float) -> dict[str, Any]:
    condition = {"broadcaster_user_id": "1337", "moderator_user_id": "1337"}
    subscription = {
        "id": str(uuid.uuid4()),
        "type": "channel.follow",
        "version": "2",
        "status": "enabled",
        "cost": 0,
        "condition": condition,
        "transport": {"method": "webhook", "callback": "https://hooks.example.com/hooks/acme/twitch"},
        "created_at": format_rfc3339(now - 86_400),
    }
    event = {
        "user_id": "1234",
        "user_login": "cool_user",
        "user_name": "Cool_User",
        "broadcaster_user_id": "1337",
        "broadcaster_user_login": "cooler_user",
        "broadcaster_user_name": "Cooler_User",
        "followed_at": format_rfc3339(now),
    }
    return {"subscription": subscription, "event": event}
