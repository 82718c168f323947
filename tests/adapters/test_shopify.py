"""Shopify adapter: vectors from @shopify/shopify-api, the Events-product headers, malformed headers,
normalization. The rules every provider keeps are proven for `shopify` by test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks.shopify import ShopifyAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("shopify")
ADAPTER = ShopifyAdapter.configure()
NEW = SigningSecret("new", b"shpss_new0123456789abcdef01234567")
BODY = orjson.dumps({"id": 820982911946154508, "email": "jon@example.com", "total_price": "403.00", "currency": "USD"})
HEADERS = {
    "X-Shopify-Topic": "orders/create",
    "X-Shopify-Shop-Domain": "example-shop.myshopify.com",
    "X-Shopify-API-Version": "2024-10",
    "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
    "X-Shopify-Triggered-At": "2023-03-29T18:00:27.877041743Z",
}
SIGNATURE = base64.b64encode(hmac.new(NEW.value, BODY, hashlib.sha256).digest()).decode()
inbound = Endpoint("https://hub.test/hooks/acme/shop", BODY)


def delivery(body: bytes = BODY, signature: str = SIGNATURE, **extra: str) -> InboundRequest:
    return inbound({**HEADERS, "X-Shopify-Hmac-Sha256": signature, **extra}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_sdk_vectors_verify_normalize_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("sdk", vector["secret"].encode())
    body = vector["payload"].encode()
    request = inbound({**vector["headers"], vector["signature_header"]: vector["signature"]}, body)
    signature = base64.b64decode(vector["signature"])  # kept as the replay key
    assert ADAPTER.verify(request, [secret]) == Verification("hmac-sha256", "sdk", None, signature)
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.subject) == (vector["id"], vector["type"], vector["subject"])
    ours = ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW)
    assert ours.headers["X-Shopify-Hmac-Sha256"] == vector["signature"]


def test_a_trailing_newline_is_part_of_the_signed_body() -> None:
    assert reason_of(delivery(body=BODY + b"\n"), [NEW]) == "no_match"


def test_events_family_header_wins_when_present() -> None:
    """As in @shopify/shopify-api: a present `Shopify-Hmac-Sha256` is the one verified."""
    assert reason_of(delivery(**{"Shopify-Hmac-Sha256": SIGNATURE[::-1]}), [NEW]) == "malformed_signature"
    assert ADAPTER.verify(inbound({"Shopify-Hmac-Sha256": SIGNATURE}), [NEW]).key_id == "new"


MALFORMED = {
    "empty": "",
    "hex instead of base64": hmac.new(NEW.value, BODY, hashlib.sha256).hexdigest(),
    "unpadded": SIGNATURE.rstrip("="),
    "truncated": SIGNATURE[:-4],
    "over-long": base64.b64encode(b"x" * 33).decode(),
    "sha1 length": base64.b64encode(b"x" * 20).decode(),
    "url-safe alphabet": base64.urlsafe_b64encode(b"\xfb" * 32).decode(),
    "prefixed": "sha256=" + SIGNATURE,
    "space inside": SIGNATURE[:10] + " " + SIGNATURE[10:],
    "non-ascii": SIGNATURE[:-1] + "\u00e9",
    "thousands of signatures": ",".join([SIGNATURE] * 5000),
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_headers_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(signature=header), [NEW]) == "malformed_signature"


def test_no_handshake() -> None:
    assert ADAPTER.handshake(delivery(), [NEW]) is None
    assert ADAPTER.scheme.handshake is None
    assert ADAPTER.scheme.timestamp is None
    assert ADAPTER.replay_window_s is None


def test_normalize_orders_create() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert event.id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert event.type == "shopify.orders.create"
    assert event.subject == "example-shop.myshopify.com"
    assert event.time == datetime(2023, 3, 29, 18, 0, 27, 877041, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_falls_back_to_event_id_then_body_hash() -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "X-Shopify-Webhook-Id"}
    assert ADAPTER.normalize(inbound(headers))[0].id == HEADERS["X-Shopify-Event-Id"]
    del headers["X-Shopify-Event-Id"], headers["X-Shopify-Shop-Domain"], headers["X-Shopify-Triggered-At"]
    [event] = ADAPTER.normalize(inbound({**headers, "X-Shopify-Topic": "APP/uninstalled"}))
    assert (event.id, event.type, event.subject, event.time) == (
        "sha256:" + hashlib.sha256(BODY).hexdigest(),
        "shopify.app.uninstalled",
        None,
        None,
    )


@pytest.mark.parametrize("triggered_at", ["2023-03-29T18:00:27", "yesterday", ""])
def test_normalize_ignores_a_time_without_zone_or_unparseable(triggered_at: str) -> None:
    assert ADAPTER.normalize(delivery(**{"X-Shopify-Triggered-At": triggered_at}))[0].time is None


@pytest.mark.parametrize("topic", [None, "", "orders create", "orders/", "../etc", "a/b/c/d/e"])
def test_normalize_needs_a_topic(topic: str | None) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "X-Shopify-Topic"}
    if topic is not None:
        headers["X-Shopify-Topic"] = topic
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound(headers))


HOSTILE = [b"", b"[1, 2]", b'{"a": NaN}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a":"\\ud800"}', b"{} {}"]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers=HEADERS, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_order_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    assert sample.headers["X-Shopify-Webhook-Id"] != ADAPTER.sample(NOW).headers["X-Shopify-Webhook-Id"]
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.subject, event.time) == (
        sample.headers["X-Shopify-Webhook-Id"],
        "shopify.orders.create",
        "acme-supplies.myshopify.com",
        datetime.fromtimestamp(NOW, UTC),
    )
