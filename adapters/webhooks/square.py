"""Square webhooks: `x-square-hmacsha256-signature: <base64>` over the notification URL + raw body.

HMAC-SHA256 keyed by the subscription's signature key (UTF-8) over `{notification URL}{raw body}`, as
squareup 46.0.0.20260916 `square.utils.webhooks_helper.verify_signature` computes it. The URL must be
the subscription's notification URL byte for byte: the `publicUrl` option (a proxy or TLS terminator
changes what the hub sees), else the URL the request arrived at. Square signs no timestamp, so replay
protection rests on the body's `event_id`, which is signed. The legacy SHA-1 `x-square-signature` is
never a fallback.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import (
    InboundRequest,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.fields import iso_time, nested_str, required_str
from adapters.signing import decode_base64, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
PUBLIC_URL = r"^https?://[^\s#]+$"


class SquareOptions(BaseModel):
    """Options of the Square adapter (`spec.webhook.options`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publicUrl: str | None = Field(
        None,
        pattern=PUBLIC_URL,
        max_length=2048,
        description="The webhook subscription's notification URL, byte for byte as set in Square; set it when a "
        "proxy or TLS terminator changes the URL the hub sees. Default: the URL received.",
    )


class SquareAdapter(WebhookAdapter[SquareOptions]):
    """Square webhook subscriptions (payments, orders, customers, ...)."""

    name: ClassVar[str] = "square"
    options_model: ClassVar[type[BaseModel]] = SquareOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the subscription's signature key as UTF-8",
        signed_content="{notification URL}{raw body}; URL = publicUrl or the URL received, byte for byte",
        encoding="base64, no prefix",
        timestamp=None,
        dedupe_key="body event_id",
        delivery_timeout_s=10.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `x-square-hmacsha256-signature` against every secret (no SHA-1 fallback)."""
        candidate = decode_base64(request.signed_header(SIGNATURE_HEADER, self.name), 32, self.name)
        content = (self.options.publicUrl or request.url).encode() + request.body
        key_id = matching_hmac(self.name, secrets, [candidate], content)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = `event_id`, `square.<type>`, subject = `data.id`, time from `created_at`."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=required_str(body, "event_id"),
                type=f"{self.name}.{required_str(body, 'type')}",
                data=orjson.Fragment(request.body),
                subject=nested_str(body, "data", "id"),
                time=iso_time(body.get("created_at")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `payment.updated` event for a completed card payment."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Square Connect v2",
            "square-environment": "Sandbox",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_payment_updated(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `x-square-hmacsha256-signature`; the URL is signed, so signing needs the `publicUrl` option."""
        if self.options.publicUrl is None:
            raise ValueError("square signs its notification URL: set the publicUrl option to sign a request")
        digest = hmac_digest("sha256", secret.value, self.options.publicUrl.encode() + request.body)
        return with_headers(request, {SIGNATURE_HEADER: base64.b64encode(digest).decode("ascii")})


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payment_updated(now: float) -> dict[str, Any]:
    created = datetime.fromtimestamp(now, UTC)
    payment_id = uuid.uuid4().hex[:22].upper() + "eV"
    return {
        "merchant_id": "6SSW7HV8K2ST5",
        "type": "payment.updated",
        "event_id": str(uuid.uuid4()),
        "created_at": _timestamp(created),
        "data": {
            "type": "payment",
            "id": payment_id,
            "object": {
                "payment": {
                    "id": payment_id,
                    "amount_money": {"amount": 1500, "currency": "USD"},
                    "total_money": {"amount": 1500, "currency": "USD"},
                    "status": "COMPLETED",
                    "source_type": "CARD",
                    "card_details": {"status": "CAPTURED", "card": {"card_brand": "VISA", "last_4": "1111"}},
                    "location_id": "L88917AVBK2S5",
                    "order_id": uuid.uuid4().hex[:26].upper(),
                    "created_at": _timestamp(created - timedelta(seconds=2)),
                    "updated_at": _timestamp(created),
                    "version": 3,
                }
            },
        },
    }
