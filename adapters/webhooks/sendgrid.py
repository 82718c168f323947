"""Twilio SendGrid Event Webhook: ECDSA P-256/SHA-256 over `{timestamp}{raw body}`.

`X-Twilio-Email-Event-Webhook-Signature` is the base64 DER signature and
`X-Twilio-Email-Event-Webhook-Timestamp` the signed unix time (sendgrid-python
`EventWebhook.verify_signature`). The connector's secret is the public verification key from
Mail Settings (base64 DER SubjectPublicKeyInfo, or PEM): only SendGrid can sign, so `sign` needs
a test key pair's private key. One request carries a JSON array of events: one event each.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from functools import lru_cache
from secrets import token_urlsafe
from typing import Any, ClassVar

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    load_der_private_key,
    load_der_public_key,
    load_pem_private_key,
    load_pem_public_key,
)

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
from adapters.fields import unix_time
from adapters.signing import body_sha256, parse_timestamp, with_headers

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_DER_BYTES = 72
"""SEQUENCE of two INTEGERs of at most 33 bytes each: the longest DER signature on P-256."""
_EVENT = re.compile(r"[a-z0-9_]{1,64}")


class SendGridAdapter(WebhookAdapter[NoOptions]):
    """SendGrid Event Webhook deliveries with Signed Event Webhook Requests enabled."""

    name: ClassVar[str] = "sendgrid"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="ECDSA P-256 with SHA-256; secret = the public verification key (base64 DER SPKI or PEM)",
        signed_content="{timestamp}{raw body}, no separator",
        encoding="standard base64 of the DER signature (SEQUENCE of r and s)",
        timestamp=f"{TIMESTAMP_HEADER} header, unix seconds",
        dedupe_key="each event's sg_event_id (one event per array element), else sha256 of the body#index",
        delivery_timeout_s=10.0,
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """The secret must be a P-256 public key (the verification key); a private key is refused."""
        _public_key(secret)

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the signature over `{timestamp}{body}` with every configured verification key."""
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        signature = _decode_signature(request.signed_header(SIGNATURE_HEADER, self.name), self.name)
        signed_at = parse_timestamp(timestamp, self.name)
        content = timestamp.encode("ascii") + request.body
        for secret in secrets:
            key = _load_public_key(secret.value)
            if key is None:
                continue  # refused by check_secret when the connector was loaded
            try:
                key.verify(signature, content, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return Verification(scheme="ecdsa-p256-sha256", key_id=secret.key_id, signed_at=signed_at)
        raise SignatureError(self.name, "no_match", "no configured verification key accepts the signature")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event per array element: id `sg_event_id`, `sendgrid.<event>`, time from `timestamp`."""
        events = request.json()
        if not isinstance(events, list) or not events:
            raise PayloadError("invalid_event", "the body is not a non-empty JSON array of events")
        normalized = []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise PayloadError("invalid_event", f"event {index} is not a JSON object")
            event_id, name = event.get("sg_event_id"), event.get("event")
            if not _text(event_id):
                event_id = f"{body_sha256(request.body)}#{index}"
            normalized.append(
                NormalizedEvent(
                    id=str(event_id),
                    type="sendgrid." + (name if isinstance(name, str) and _EVENT.fullmatch(name) else "event"),
                    data=event,
                    subject=next((v for v in (event.get("sg_message_id"), event.get("email")) if _text(v)), None),
                    time=unix_time(event.get("timestamp")),
                )
            )
        return normalized

    def sample(self, now: float) -> TestRequest:
        """A batch of `processed`, `delivered` and `open` for one message, with SendGrid's trailing CRLF."""
        message_id = f"{token_urlsafe(16)}.recvd-5d4f7c9b8-x2l7q-1-{int(now):X}-3.0"
        base = {"email": "ada@example.com", "sg_message_id": message_id, "category": ["receipts"]}
        events = [
            {**base, "event": "processed", "timestamp": int(now) - 9, "smtp-id": f"<{message_id[:22]}@example.com>"},
            {**base, "event": "delivered", "timestamp": int(now) - 5, "response": "250 2.0.0 OK", "ip": "192.0.2.5"},
            {**base, "event": "open", "timestamp": int(now), "useragent": "Mozilla/5.0", "ip": "198.51.100.7"},
        ]
        for event in events:
            event["sg_event_id"] = token_urlsafe(36)
        headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
        return TestRequest(headers=headers, body=orjson.dumps(events) + b"\r\n")

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add both headers, signing with `secret` = a P-256 private key (deterministic ECDSA, RFC 6979)."""
        timestamp = str(int(now))
        key = _private_key(secret)
        der = key.sign(timestamp.encode("ascii") + request.body, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        signature = base64.b64encode(der).decode("ascii")
        return with_headers(request, {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: timestamp})


def _decode_signature(value: str, provider: str) -> bytes:
    """The DER signature from canonical base64, itself canonical DER of two integers, else a SignatureError."""
    try:
        der = base64.b64decode(value, validate=True)
        r, s = decode_dss_signature(der) if len(der) <= MAX_DER_BYTES else (0, 0)
    except (binascii.Error, ValueError):
        r, s, der = 0, 0, b""
    if r <= 0 or s <= 0 or base64.b64encode(der).decode("ascii") != value or encode_dss_signature(r, s) != der:
        raise SignatureError(provider, "malformed_signature", "expected canonical base64 of a DER ECDSA signature")
    return der


@lru_cache(maxsize=64)
def _load_public_key(value: bytes) -> ec.EllipticCurvePublicKey | None:
    """A P-256 public key from PEM or (whitespace-tolerant) base64 DER SubjectPublicKeyInfo, else None."""
    try:
        if value.lstrip().startswith(b"-----BEGIN"):
            key: Any = load_pem_public_key(value.strip())
        else:
            key = load_der_public_key(base64.b64decode(b"".join(value.split()), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    return None


def _public_key(secret: SigningSecret) -> ec.EllipticCurvePublicKey:
    key = _load_public_key(secret.value)
    if key is None:
        raise ValueError(f"secret {secret.key_id}: not a P-256 public key (base64 DER SubjectPublicKeyInfo or PEM)")
    return key


def _private_key(secret: SigningSecret) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key (PEM, or base64 DER PKCS#8) to sign test requests with, else ValueError."""
    value = secret.value
    try:
        if value.lstrip().startswith(b"-----BEGIN"):
            key: Any = load_pem_private_key(value.strip(), password=None)
        else:
            key = load_der_private_key(base64.b64decode(b"".join(value.split()), validate=True), password=None)
    except (binascii.Error, ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(
            f"secret {secret.key_id}: signing needs a P-256 private key; SendGrid's verification key cannot sign"
        )
    return key


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
