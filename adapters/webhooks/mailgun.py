"""Mailgun webhooks: the signature is in the JSON body, `signature: {timestamp, token, signature}`.

`signature` is the lowercase hex HMAC-SHA256, keyed by the HTTP webhook signing key (UTF-8), of
`timestamp + token` with no separator (Mailgun's "Securing Webhooks"; mailgun 1.10.0
`SecurityGuard.verify_webhook`). Events of a subaccount also carry `parent-signature`, the same under
the primary account's key, so either is accepted. Only the timestamp and the token are signed: the
`event-data` is not. The token is therefore the dedupe key, as Mailgun advises ("cache the token"):
each signature is accepted once, so a captured one cannot carry other event data. The legacy
form-encoded webhooks are not supported.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import token_hex
from typing import Any, ClassVar

import orjson

from adapters.base import (
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
from adapters.fields import first_str, unix_time
from adapters.signing import body_field, decode_hex, hmac_digest, matching_hmac, parse_timestamp

SIGNATURE_FIELD = "signature"
PARENT_SIGNATURE_FIELD = "parent-signature"
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
"""Printable ASCII without spaces; Mailgun sends 50 characters."""


class MailgunAdapter(WebhookAdapter[NoOptions]):
    """Mailgun event webhooks (JSON: `signature` and `event-data`)."""

    name: ClassVar[str] = "mailgun"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header="signature.signature in the JSON body (or signature.parent-signature, subaccounts)",
        algorithm="HMAC-SHA256, key = the HTTP webhook signing key as UTF-8",
        signed_content="{signature.timestamp}{signature.token}, no separator (event-data is not signed)",
        encoding="lowercase hex",
        timestamp="signature.timestamp in the body, unix seconds",
        dedupe_key="signature.token (a signed nonce; the unsigned event-data.id stays in the data)",
        delivery_timeout_s=10.0,
        accepted_status=200,  # Mailgun counts only 200 as delivered (406 rejects, anything else is retried)
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `signature` (and `parent-signature`) against every secret."""
        fields = _signature_object(request, self.name)
        timestamp, token = _timestamp(fields, self.name), _token(fields, self.name)
        signed_at = parse_timestamp(timestamp, self.name)
        candidates = [decode_hex(_field(fields, SIGNATURE_FIELD, self.name), 32, self.name)]
        if PARENT_SIGNATURE_FIELD in fields:
            candidates.append(decode_hex(_field(fields, PARENT_SIGNATURE_FIELD, self.name), 32, self.name))
        content = (timestamp + token).encode("ascii")
        key_id = matching_hmac(self.name, secrets, candidates, content)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = the token, `mailgun.<event>`, subject = the message id, time from event-data."""
        body = request.json_object()
        fields, event_data = body.get(SIGNATURE_FIELD), body.get("event-data")
        token = fields.get("token") if isinstance(fields, dict) else None
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise PayloadError("invalid_event", "the body has no signature.token")
        if not isinstance(event_data, dict):
            raise PayloadError("invalid_event", "the body has no event-data object")
        event = event_data.get("event")
        if not isinstance(event, str) or not event:
            raise PayloadError("invalid_event", "event-data has no string 'event'")
        return [
            NormalizedEvent(
                id=token,
                type=f"{self.name}.{event}",
                data=orjson.Fragment(request.body),
                subject=first_str(event_data, ("message", "headers", "message-id"), ("recipient",)),
                time=unix_time(event_data.get("timestamp"), fractional=True),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An unsigned `delivered` event (`sign` adds the `signature` object to the body)."""
        return TestRequest(headers={"Content-Type": "application/json"}, body=orjson.dumps(_delivered(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """The body with a `signature` object first, as Mailgun sends it: a fresh token, timestamp `int(now)`."""
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise ValueError("mailgun signs inside a JSON object body; this body is not one")
        timestamp, token = str(int(now)), token_hex(25)
        digest = hmac_digest("sha256", secret.value, (timestamp + token).encode("ascii")).hex()
        fields = {"token": token, "timestamp": timestamp, "signature": digest}
        rest = {key: value for key, value in body.items() if key != SIGNATURE_FIELD}
        return TestRequest(headers=dict(request.headers), body=orjson.dumps({SIGNATURE_FIELD: fields, **rest}))


def _signature_object(request: InboundRequest, provider: str) -> dict[str, Any]:
    """The body's `signature` object; an unreadable body or a missing object is an unsigned request."""
    try:
        body = request.json()
    except PayloadError:
        body = None
    fields = body.get(SIGNATURE_FIELD) if isinstance(body, dict) else None
    if not isinstance(fields, dict):
        raise SignatureError(provider, "missing_header", "the body is not a JSON object with a signature object")
    return fields


def _field(fields: dict[str, Any], key: str, provider: str) -> str:
    return body_field(fields, key, provider, label=f"{SIGNATURE_FIELD}.{key}")


def _timestamp(fields: dict[str, Any], provider: str) -> str:
    """The timestamp's digits as signed: a string of digits, or a JSON integer written out."""
    value = fields.get("timestamp")
    if type(value) is int and value >= 0:
        return str(value)
    return _field(fields, "timestamp", provider)


def _token(fields: dict[str, Any], provider: str) -> str:
    token = _field(fields, "token", provider)
    if not _TOKEN.fullmatch(token):
        raise SignatureError(provider, "malformed_signature", "signature.token is not 1-256 printable characters")
    return token


def _delivered(now: float) -> dict[str, Any]:
    domain = "mg.example.com"
    message_id = f"{datetime.fromtimestamp(int(now), UTC):%Y%m%d%H%M%S}.{uuid.uuid4().hex[:16]}@{domain}"
    return {
        "event-data": {
            "id": uuid.uuid4().hex[:22],
            "timestamp": round(now, 6),
            "log-level": "info",
            "event": "delivered",
            "recipient": "ada@example.com",
            "recipient-domain": "example.com",
            "envelope": {"transport": "smtp", "sender": f"bob@{domain}", "targets": "ada@example.com"},
            "delivery-status": {"code": 250, "message": "OK", "attempt-no": 1, "tls": True, "session-seconds": 0.4},
            "message": {
                "headers": {"to": "Ada <ada@example.com>", "message-id": message_id, "from": f"Bob <bob@{domain}>"},
                "attachments": [],
                "size": 1123,
            },
            "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
            "tags": ["welcome"],
            "campaigns": [],
            "user-variables": {"account": "acme-42"},
        }
    }
