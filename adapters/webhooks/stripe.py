"""Stripe webhooks: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]` over `{t}.{raw body}`.

The HMAC key is the endpoint secret string (`whsec_...`) as UTF-8 bytes, not base64-decoded
(stripe-python `WebhookSignature._compute_signature`). Schemes other than `v1` are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from adapters.fields import first_str, required_str, unix_time
from adapters.signing import (
    hmac_digest,
    matching_hmac,
    split_items,
    timestamped_signatures,
    with_headers,
)

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
        key_id = matching_hmac(self.name, secrets, candidates, content)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `stripe.<type>`, time from `created`, subject = the customer or the object."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=required_str(body, "id"),
                type="stripe." + required_str(body, "type"),
                data=orjson.Fragment(request.body),
                subject=first_str(body, ("data", "object", "customer"), ("data", "object", "id")),
                time=unix_time(body.get("created")),
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
    return timestamped_signatures(items, provider, header=SIGNATURE_HEADER, timestamp_key="t", version=SCHEME)


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
