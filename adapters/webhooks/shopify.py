"""Shopify webhooks: `X-Shopify-Hmac-Sha256: <base64>`, HMAC-SHA256 of the raw body.

The key is the app's client secret as UTF-8. Shopify signs no timestamp (`X-Shopify-Triggered-At`
is informational), so replay protection rests on the `X-Shopify-Webhook-Id` dedupe key, which
@shopify/shopify-api requires on every delivery. Deliveries of the newer Events product carry the
same headers without the `X-` prefix (`Shopify-Hmac-Sha256`, ...); as in @shopify/shopify-api's
`webhooks.validate`, that header wins when present and the other headers are read from its family.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import randbelow
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
from adapters.fields import iso_time
from adapters.signing import body_sha256, decode_base64, hmac_digest, matching_hmac, with_headers

WEBHOOKS_PREFIX = "X-Shopify-"
EVENTS_PREFIX = "Shopify-"
SIGNATURE_HEADER = WEBHOOKS_PREFIX + "Hmac-Sha256"
EVENTS_SIGNATURE_HEADER = EVENTS_PREFIX + "Hmac-Sha256"
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}")


class ShopifyAdapter(WebhookAdapter[NoOptions]):
    """Shopify app webhooks delivered over HTTPS (Pub/Sub and EventBridge deliveries are unsigned)."""

    name: ClassVar[str] = "shopify"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=f"{SIGNATURE_HEADER} (Events product: {EVENTS_SIGNATURE_HEADER})",
        algorithm="HMAC-SHA256, key = the app's client secret as UTF-8",
        signed_content="the raw body",
        encoding="standard base64 with padding, no prefix",
        timestamp=None,
        dedupe_key="X-Shopify-Webhook-Id header, else X-Shopify-Event-Id, else sha256 of the body",
        delivery_timeout_s=5.0,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the one base64 signature against every secret (Shopify sends one; rotation takes up to an hour)."""
        header = request.signed_header(_prefix(request) + "Hmac-Sha256", self.name)
        candidate = decode_base64(header, 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `shopify.<topic with / as .>`, subject = the shop domain, time = Triggered-At."""
        prefix = _prefix(request)
        request.json_object()
        topic = request.header(prefix + "Topic")
        if not topic or not _TOPIC.fullmatch(topic):
            raise PayloadError("invalid_event", f"header {prefix}Topic is missing or not a topic such as orders/create")
        return [
            NormalizedEvent(
                id=request.header(prefix + "Webhook-Id")
                or request.header(prefix + "Event-Id")
                or body_sha256(request.body),
                type="shopify." + topic.lower().replace("/", "."),
                data=orjson.Fragment(request.body),
                subject=request.header(prefix + "Shop-Domain") or None,
                time=iso_time(request.header(prefix + "Triggered-At")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An `orders/create` webhook from `acme-supplies.myshopify.com`."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "acme-supplies.myshopify.com",
            "X-Shopify-API-Version": "2025-07",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
        }
        return TestRequest(headers=headers, body=orjson.dumps(_order(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Shopify-Hmac-Sha256` (Shopify signs no timestamp, so `now` is unused)."""
        digest = hmac_digest("sha256", secret.value, request.body)
        return with_headers(request, {SIGNATURE_HEADER: base64.b64encode(digest).decode("ascii")})


def _prefix(request: InboundRequest) -> str:
    """`Shopify-` for an Events-product delivery (its signature header is present), else `X-Shopify-`."""
    return EVENTS_PREFIX if EVENTS_SIGNATURE_HEADER in request.headers else WEBHOOKS_PREFIX


def _order(now: float) -> dict[str, Any]:
    created = datetime.fromtimestamp(now, UTC).isoformat()
    order_id = 5_000_000_000_000 + randbelow(10**12)
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{1000 + randbelow(9000)}",
        "email": "ada@example.com",
        "created_at": created,
        "updated_at": created,
        "currency": "USD",
        "financial_status": "paid",
        "fulfillment_status": None,
        "subtotal_price": "38.00",
        "total_tax": "3.04",
        "total_price": "41.04",
        "customer": {"id": 7_390_123_456_789, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
        "line_items": [
            {
                "id": 13_000_000_000_001,
                "product_id": 8_100_000_000_001,
                "title": "Brass compass",
                "sku": "COMPASS-BR",
                "quantity": 2,
                "price": "19.00",
            }
        ],
        "shipping_address": {"city": "London", "country_code": "GB", "zip": "NW1 6XE"},
    }
