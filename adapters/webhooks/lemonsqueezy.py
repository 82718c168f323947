"""Lemon Squeezy webhooks: `X-Signature: <hex>`, HMAC-SHA256 of the raw body under the signing secret.

Lemon Squeezy signs no timestamp and sends no delivery id, so the dedupe key is the SHA-256 of the
body: a retry resends the same bytes, and two different events never share a body (every update
carries its own `updated_at`). The event name is read from the signed body (`meta.event_name`);
the unsigned `X-Event-Name` header is only a fallback.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
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
from adapters.errors import PayloadError
from adapters.fields import first_time, nested_str
from adapters.signing import body_sha256, decode_hex, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "X-Signature"
EVENT_HEADER = "X-Event-Name"


class LemonSqueezyAdapter(WebhookAdapter[NoOptions]):
    """Lemon Squeezy store webhooks (orders, subscriptions, license keys, affiliates)."""

    name: ClassVar[str] = "lemonsqueezy"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook's signing secret as UTF-8",
        signed_content="the raw body",
        encoding="lowercase hex, no prefix",
        timestamp=None,
        dedupe_key="sha256 of the body (Lemon Squeezy sends no delivery or event id)",
        delivery_timeout_s=10.0,
        accepted_status=200,  # Lemon Squeezy retries any answer other than 200
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-Signature` against every secret."""
        candidate = decode_hex(request.signed_header(SIGNATURE_HEADER, self.name), 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `lemonsqueezy.<event_name>`, subject = `<data.type>/<data.id>`, time = `updated_at`."""
        body = request.json_object()
        meta = body.get("meta")
        event_name = meta.get("event_name") if isinstance(meta, dict) else None
        if not isinstance(event_name, str) or not event_name:
            event_name = request.header(EVENT_HEADER)
        if not event_name:
            raise PayloadError("invalid_event", f"no meta.event_name in the body and no {EVENT_HEADER} header")
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        return [
            NormalizedEvent(
                id=body_sha256(request.body),
                type=f"{self.name}.{event_name}",
                data=orjson.Fragment(request.body),
                subject=_subject(data),
                time=_time(data.get("attributes")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An `order_created` event (JSON:API `orders` resource)."""
        headers = {"Content-Type": "application/json", EVENT_HEADER: "order_created"}
        return TestRequest(headers=headers, body=orjson.dumps(_order_created(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Signature: <hex HMAC-SHA256 of the body>`."""
        return with_headers(request, {SIGNATURE_HEADER: hmac_digest("sha256", secret.value, request.body).hex()})


def _subject(data: dict[str, Any]) -> str | None:
    """`orders/1`: the JSON:API type and id of the resource the event is about."""
    kind, ident = data.get("type"), data.get("id")
    if type(ident) is int:
        ident = str(ident)
    if isinstance(kind, str) and kind and isinstance(ident, str) and ident:
        return f"{kind}/{ident}"
    return None


def _time(attributes: Any) -> datetime | None:
    """The resource's `updated_at`, else its `created_at` (ISO 8601 with `Z`)."""
    return first_time(nested_str(attributes, key) for key in ("updated_at", "created_at"))


def _order_created(now: float) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    order_id = 1_000_000 + uuid.uuid4().int % 9_000_000
    return {
        "meta": {"test_mode": True, "event_name": "order_created", "custom_data": {"customer_id": 25}},
        "data": {
            "type": "orders",
            "id": str(order_id),
            "attributes": {
                "store_id": 1,
                "customer_id": 1,
                "identifier": str(uuid.uuid4()),
                "order_number": order_id,
                "user_name": "Ada Lovelace",
                "user_email": "ada@example.com",
                "currency": "USD",
                "subtotal": 999,
                "tax": 200,
                "total": 1199,
                "status": "paid",
                "refunded": False,
                "first_order_item": {"id": 1, "order_id": order_id, "product_id": 1, "variant_id": 1, "price": 999},
                "created_at": stamp,
                "updated_at": stamp,
                "test_mode": True,
            },
            "links": {"self": f"https://api.lemonsqueezy.com/v1/orders/{order_id}"},
        },
    }
