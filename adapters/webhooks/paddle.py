"""Paddle Billing webhooks: `Paddle-Signature: ts=<ts>;h1=<hex>[;h1=...]` over `{ts}:{raw body}`.

The HMAC key is the notification destination's secret string (`pdl_ntfset_...`) as UTF-8 bytes,
as in paddle-python-sdk 1.16.1 (`PaddleSignature.calculate_hmac`). Like the SDK's parser, a key
other than `ts` and `h1` makes the header malformed; several `h1` values carry secret rotation.
Paddle's SDK refuses a timestamp more than 5 s off, past or future: that is the default window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import choice
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
from adapters.errors import SignatureError
from adapters.fields import first_str, iso_time, required_str
from adapters.signing import (
    hmac_digest,
    matching_hmac,
    split_items,
    timestamped_signatures,
    with_headers,
)

SIGNATURE_HEADER = "Paddle-Signature"
TIMESTAMP_KEY = "ts"
SCHEME = "h1"
_ULID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


class PaddleAdapter(WebhookAdapter[NoOptions]):
    """Paddle Billing notifications (`evt_...`) sent to a notification destination."""

    name: ClassVar[str] = "paddle"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the destination's pdl_ntfset_ secret string as UTF-8",
        signed_content="{ts}:{raw body}",
        encoding="lowercase hex in h1= items: ts=<ts>;h1=<hex>[;h1=<hex>...]",
        timestamp="ts in Paddle-Signature, unix seconds",
        dedupe_key="body event_id (evt_...; notification_id differs per destination)",
        default_replay_window_s=5.0,
        delivery_timeout_s=5.0,
        accepted_status=200,  # Paddle: "returns 200 within five seconds" (developer.paddle.com)
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check every `h1` signature of `Paddle-Signature` against every secret."""
        signed_at, candidates = _parse_header(request.signed_header(SIGNATURE_HEADER, self.name), self.name)
        content = _signed_content(int(signed_at), request.body)
        key_id = matching_hmac(self.name, secrets, candidates, content)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = `event_id`, `paddle.<event_type>`, time from `occurred_at`."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=required_str(body, "event_id", what="notification"),
                type="paddle." + required_str(body, "event_type", what="notification"),
                data=orjson.Fragment(request.body),
                subject=first_str(body, ("data", "customer_id"), ("data", "id")),  # the customer, else the entity
                time=iso_time(body.get("occurred_at")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `transaction.completed` notification."""
        return TestRequest(headers={"Content-Type": "application/json"}, body=orjson.dumps(_transaction(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `Paddle-Signature: ts=<int(now)>;h1=<hex>`."""
        timestamp = int(now)
        signature = hmac_digest("sha256", secret.value, _signed_content(timestamp, request.body)).hex()
        return with_headers(request, {SIGNATURE_HEADER: f"{TIMESTAMP_KEY}={timestamp};{SCHEME}={signature}"})


def _parse_header(header: str, provider: str) -> tuple[float, list[bytes]]:
    """The `ts` value as unix seconds and the decoded `h1` signatures; any other key is malformed."""
    items = split_items(header, provider, item_sep=";", pair_sep="=")
    if any(key not in (TIMESTAMP_KEY, SCHEME) for key, _ in items):
        raise SignatureError(provider, "malformed_signature", f"{SIGNATURE_HEADER} has a key other than ts and h1")
    _, signed_at, candidates = timestamped_signatures(
        items, provider, header=SIGNATURE_HEADER, timestamp_key=TIMESTAMP_KEY, version=SCHEME
    )
    return signed_at, candidates


def _signed_content(timestamp: int, body: bytes) -> bytes:
    """`{ts}:{body}` with ts written as an integer, as the SDK does (`int(ts)`)."""
    return f"{timestamp}:".encode("ascii") + body


def _paddle_id(prefix: str) -> str:
    """An id shaped like Paddle's: prefix, underscore, a lowercase ULID."""
    return f"{prefix}_01" + "".join(choice(_ULID_ALPHABET) for _ in range(24))


def _transaction(now: float) -> dict[str, Any]:
    stamp = _utc(now)
    customer = "ctm_01hv6y1jedq4p1n0yqn5ba3ky4"
    return {
        "event_id": _paddle_id("evt"),
        "event_type": "transaction.completed",
        "occurred_at": stamp,
        "notification_id": _paddle_id("ntf"),
        "data": {
            "id": _paddle_id("txn"),
            "status": "completed",
            "customer_id": customer,
            "address_id": "add_01hv8gq3318ktkfengj2r75gfx",
            "business_id": None,
            "currency_code": "USD",
            "origin": "web",
            "subscription_id": "sub_01hv8y5ehszzq0yv20ttx3166y",
            "collection_mode": "automatic",
            "billed_at": stamp,
            "items": [
                {
                    "quantity": 1,
                    "price": {"id": "pri_01gsz8x8sawmvhz1pv30nge1ke", "product_id": "pro_01gsz4t5hdjse780zja8vvr7jg"},
                }
            ],
            "details": {"totals": {"subtotal": "3000", "tax": "600", "total": "3600", "currency_code": "USD"}},
            "created_at": stamp,
            "updated_at": stamp,
        },
    }


def _utc(now: float) -> str:
    """RFC 3339 UTC with microseconds and `Z`, as Paddle writes timestamps."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
