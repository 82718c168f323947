"""Zoom webhooks: `x-zm-signature: v0=<hex>` over `v0:{x-zm-request-timestamp}:{raw body}`.

The HMAC key is the app's Secret Token as UTF-8. The `endpoint.url_validation` challenge (sent
when the URL is saved and every 72 hours) is signed like any event and is answered with the
plain token and its HMAC under the same Secret Token. Zoom sends no event id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import randbelow, token_hex, token_urlsafe
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
from adapters.fields import unix_time
from adapters.signing import (
    after_prefix,
    body_sha256,
    decode_hex,
    hmac_digest,
    matching_hmac,
    parse_timestamp,
    with_headers,
)

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
PREFIX = "v0="
VALIDATION_EVENT = "endpoint.url_validation"
MAX_PLAIN_TOKEN = 256
"""Zoom's plain tokens are about 22 characters; a longer one is refused rather than echoed."""


class ZoomAdapter(WebhookAdapter[NoOptions]):
    """Zoom Marketplace app event subscriptions (meetings, webinars, recordings, users, ...)."""

    name: ClassVar[str] = "zoom"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the app's Secret Token as UTF-8",
        signed_content=f"v0:{{{TIMESTAMP_HEADER}}}:{{raw body}}",
        encoding="lowercase hex, prefixed v0=",
        timestamp=f"{TIMESTAMP_HEADER} header, unix seconds",
        dedupe_key="sha256 of the body (Zoom sends no event id; the body holds event, event_ts and the object)",
        handshake=f"event {VALIDATION_EVENT} -> 200 application/json "
        '{"plainToken":<payload.plainToken>,"encryptedToken":<hex HMAC-SHA256(secret, plainToken)>}',
        delivery_timeout_s=3.0,
        accepted_status=200,  # Zoom counts only 200 and 204 as delivered
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `x-zm-signature` against every secret over `v0:{timestamp}:{body}`."""
        header = request.signed_header(SIGNATURE_HEADER, self.name)
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        candidate = decode_hex(after_prefix(header, PREFIX, SIGNATURE_HEADER, self.name), 32, self.name)
        signed_at = parse_timestamp(timestamp, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], _signed_content(timestamp, request.body))
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Answer `endpoint.url_validation` with the token hashed by the secret that signed the request."""
        body = request.json_object()
        if body.get("event") != VALIDATION_EVENT:
            return None
        payload = body.get("payload")
        token = payload.get("plainToken") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not 0 < len(token) <= MAX_PLAIN_TOKEN:
            raise PayloadError("invalid_event", f"{VALIDATION_EVENT} needs a plainToken of 1-{MAX_PLAIN_TOKEN} chars")
        secret = self._signing_secret(request, secrets)
        encrypted = hmac_digest("sha256", secret.value, token.encode()).hex()
        return HandshakeReply(200, orjson.dumps({"plainToken": token, "encryptedToken": encrypted}), "application/json")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `zoom.<event>`, time from `event_ts` (ms), subject = the object's id."""
        body = request.json_object()
        event = body.get("event")
        if not isinstance(event, str) or not event:
            raise PayloadError("invalid_event", "the event has no string 'event'")
        return [
            NormalizedEvent(
                id=body_sha256(request.body),
                type=f"{self.name}.{event}",
                data=orjson.Fragment(request.body),
                subject=_subject(body.get("payload")),
                time=unix_time(body.get("event_ts"), unit="ms"),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `meeting.started` event, serialized compactly as Zoom sends it."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Zoom Marketplace/1.0a",
            "x-zm-trackingid": "v=2.0;clid=us06;rid=WEB_" + token_hex(16),
        }
        return TestRequest(headers=headers, body=orjson.dumps(_meeting_started(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `x-zm-request-timestamp: <int(now)>` and `x-zm-signature: v0=<hex>`."""
        timestamp = str(int(now))
        signature = PREFIX + hmac_digest("sha256", secret.value, _signed_content(timestamp, request.body)).hex()
        return with_headers(request, {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature})

    def _signing_secret(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> SigningSecret:
        """The first secret that verifies the request, else the first (the hub never sends the answer to an
        unverified request: in shadow mode it refuses such a validation with its verification failure)."""
        if not secrets:
            raise SignatureError(self.name, "no_match", "the connector has no secret to answer the validation with")
        try:
            key_id = self.verify(request, secrets).key_id
        except SignatureError:
            return secrets[0]
        return next(secret for secret in secrets if secret.key_id == key_id)


def _signed_content(timestamp: str, body: bytes) -> bytes:
    return f"v0:{timestamp}:".encode("ascii") + body


def _subject(payload: Any) -> str | None:
    obj = payload.get("object") if isinstance(payload, dict) else None
    for container, key in ((obj, "id"), (obj, "uuid"), (payload, "account_id")):
        value = container.get(key) if isinstance(container, dict) else None
        if type(value) is int:
            value = str(value)
        if isinstance(value, str) and value:
            return value
    return None


def _meeting_started(now: float) -> dict[str, Any]:
    started = datetime.fromtimestamp(int(now), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "event": "meeting.started",
        "payload": {
            "account_id": "AAAAAABBBB_C123456789",
            "object": {
                "id": str(80000000000 + randbelow(10**10)),
                "uuid": token_urlsafe(16)[:22] + "==",
                "host_id": "z8yCxjabcdEFGHfp8uQ",
                "topic": "Weekly planning",
                "type": 2,
                "start_time": started,
                "timezone": "Europe/Berlin",
                "duration": 30,
            },
        },
        "event_ts": int(now * 1000),
    }
