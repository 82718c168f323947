"""Stripe webhooks: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]` over `{t}.{raw body}`.

The HMAC key is the endpoint secret string (`whsec_...`) as UTF-8 bytes, not base64-decoded
(stripe-python `WebhookSignature._compute_signature`). Schemes other than `v1` are ignored.
"""

from __future__ import annotations

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
    matching_key,
)
from adapters.errors import PayloadError, SignatureError
from adapters.signing import decode_hex, hmac_digest, parse_timestamp, split_items, with_headers

SIGNATURE_HEADER = "Stripe-Signature"
SCHEME = "v1"


class StripeAdapter(WebhookAdapter[NoOptions]):
    """Stripe snapshot events (`evt_...`) sent to a webhook endpoint."""

    name: ClassVar[str] = "stripe"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the whsec_ secret string as UTF-8 (not base64-decoded)",
        signed_content="{t}.{raw body}",
        encoding="lowercase hex in v1= items: t=<ts>,v1=<hex>[,v1=<hex>...]",
        timestamp="t in Stripe-Signature, unix seconds",
        dedupe_key="body id (evt_...)",
        delivery_timeout_s=20.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check every `v1` signature of `Stripe-Signature` against every secret."""
        timestamp, signed_at, candidates = _parse_header(request.signed_header(SIGNATURE_HEADER, self.name), self.name)
        content = timestamp.encode("ascii") + b"." + request.body
        key_id = matching_key(self.name, secrets, candidates, lambda s: hmac_digest("sha256", s.value, content))
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `stripe.<type>`, time from `created`, subject = the customer or the object."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=_required_str(body, "id"),
                type="stripe." + _required_str(body, "type"),
                data=orjson.Fragment(request.body),
                subject=_subject(body),
                time=_unix_time(body.get("created")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An `invoice.paid` event."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_invoice_paid(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `Stripe-Signature: t=<int(now)>,v1=<hex>`."""
        timestamp = str(int(now))
        signature = hmac_digest("sha256", secret.value, timestamp.encode("ascii") + b"." + request.body).hex()
        return with_headers(request, {SIGNATURE_HEADER: f"t={timestamp},{SCHEME}={signature}"})


def _parse_header(header: str, provider: str) -> tuple[str, float, list[bytes]]:
    """The `t` value as sent and as unix seconds, and the decoded `v1` signatures (other schemes ignored)."""
    items = split_items(header, provider, item_sep=",", pair_sep="=")
    timestamps = [value for key, value in items if key == "t"]
    if len(timestamps) != 1:
        raise SignatureError(provider, "malformed_signature", f"{SIGNATURE_HEADER} needs exactly one t=")
    signed_at = parse_timestamp(timestamps[0], provider)
    signatures = [value for key, value in items if key == SCHEME]
    if not signatures:
        raise SignatureError(provider, "unsupported_scheme", f"{SIGNATURE_HEADER} carries no {SCHEME}= signature")
    return timestamps[0], signed_at, [decode_hex(value, 32, provider) for value in signatures]


def _required_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError("invalid_event", f"the event has no string {key!r}")
    return value


def _subject(body: dict[str, Any]) -> str | None:
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    for key in ("customer", "id"):
        if isinstance(value := obj.get(key), str) and value:
            return value
    return None


def _unix_time(value: Any) -> datetime | None:
    if type(value) is not int:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _invoice_paid(now: float) -> dict[str, Any]:
    created = int(now)
    invoice_id = "in_" + token_hex(12)
    return {
        "id": "evt_" + token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "type": "invoice.paid",
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {
            "object": {
                "id": invoice_id,
                "object": "invoice",
                "customer": "cus_NeZwdNtLEOXuvB",
                "subscription": "sub_1MowQVLkdIwHu7ixeRlqHVzs",
                "amount_due": 2000,
                "amount_paid": 2000,
                "currency": "usd",
                "status": "paid",
                "paid": True,
                "number": "B5E1B5A7-0001",
                "created": created - 3600,
            }
        },
    }
