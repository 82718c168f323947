"""Intercom webhooks: `X-Hub-Signature: sha1=<hex>` over the raw body, `ping` topic answered as a handshake.

HMAC-SHA1 keyed by the app's client secret (UTF-8; legacy subscriptions used their `hub_secret`) over
the raw JSON body, lowercase hex after a literal `sha1=`. Intercom signs no timestamp, so replay
protection rests on the notification `id` (`notif_...`), which is in the signed body.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from secrets import randbelow
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
from adapters.errors import PayloadError
from adapters.fields import nested_str, required_str, unix_time
from adapters.signing import after_prefix, decode_hex, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "X-Hub-Signature"
PREFIX = "sha1="
PING_TOPIC = "ping"
PING_REPLY = HandshakeReply(200, b'{"handshake":"ping"}', "application/json")


class IntercomAdapter(WebhookAdapter[NoOptions]):
    """Intercom Developer Hub webhook topics (conversations, contacts, tickets, ...)."""

    name: ClassVar[str] = "intercom"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA1, key = the app's client secret as UTF-8",
        signed_content="the raw body",
        encoding="lowercase hex, prefixed sha1=",
        timestamp=None,
        dedupe_key="body id (notif_...)",
        handshake=f'topic "{PING_TOPIC}" -> 200 {PING_REPLY.body.decode()}',
        delivery_timeout_s=5.0,
        accepted_status=200,  # Intercom's docs name no 2xx but 200; 200 is what it counts as delivered
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-Hub-Signature` against every secret."""
        header = after_prefix(request.signed_header(SIGNATURE_HEADER, self.name), PREFIX, SIGNATURE_HEADER, self.name)
        candidate = decode_hex(header, 20, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body, "sha1")
        return Verification(scheme="hmac-sha1", key_id=key_id, signed_at=None, signature=candidate)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Answer the `ping` notification Intercom sends to test an endpoint; publish nothing for it."""
        try:
            body = request.json()
        except PayloadError:
            return None  # normalize refuses it
        return PING_REPLY if isinstance(body, dict) and body.get("topic") == PING_TOPIC else None

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = `id`, `intercom.<topic>`, subject = `data.item.id`, time from `created_at`."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=required_str(body, "id", what="notification"),
                type=f"{self.name}.{required_str(body, 'topic', what='notification')}",
                data=orjson.Fragment(request.body),
                subject=nested_str(body, "data", "item", "id"),
                time=unix_time(body.get("created_at")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `conversation.user.created` notification."""
        headers = {"Content-Type": "application/json", "User-Agent": "Intercom-Webhooks-Bot/2.0"}
        return TestRequest(headers=headers, body=orjson.dumps(_conversation_created(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Hub-Signature: sha1=<hex>`."""
        return with_headers(request, {SIGNATURE_HEADER: PREFIX + hmac_digest("sha1", secret.value, request.body).hex()})


def _conversation_created(now: float) -> dict[str, Any]:
    created = int(now)
    conversation_id = str(100_000_000_000 + randbelow(10**11))
    author = {"type": "user", "id": "5310d8e7598c9a0b24000002", "name": "Ada Lovelace", "email": "ada@example.com"}
    return {
        "type": "notification_event",
        "app_id": "ecahpwf5",
        "data": {
            "type": "notification_event_data",
            "item": {
                "type": "conversation",
                "id": conversation_id,
                "created_at": created,
                "updated_at": created,
                "state": "open",
                "open": True,
                "read": False,
                "source": {
                    "type": "conversation",
                    "id": str(2_000_000_000 + randbelow(10**9)),
                    "delivered_as": "customer_initiated",
                    "body": "<p>Hi, I cannot export my invoices.</p>",
                    "author": author,
                },
                "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": author["id"]}]},
            },
        },
        "links": {},
        "id": f"notif_{uuid.uuid4()}",
        "topic": "conversation.user.created",
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": created,
        "created_at": created,
        "self": None,
    }
