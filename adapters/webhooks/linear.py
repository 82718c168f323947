"""Linear webhooks: `Linear-Signature: <hex>`, HMAC-SHA256 of the raw body.

The timestamp is inside the signed body (`webhookTimestamp`, unix ms), so it is authenticated
with the body; `@linear/sdk` refuses a body without it and anything more than 60 s off its clock,
and so does this adapter (the 60 s is the default replay window). The unsigned `Linear-Timestamp`
header is never read.
"""

from __future__ import annotations

import math
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
from adapters.errors import PayloadError, SignatureError
from adapters.fields import first_str, iso_time, unix_time
from adapters.signing import body_sha256, decode_hex, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "Linear-Signature"
DELIVERY_HEADER = "Linear-Delivery"
EVENT_HEADER = "Linear-Event"
TIMESTAMP_FIELD = "webhookTimestamp"
MAX_TIMESTAMP_MS = 10**15


class LinearAdapter(WebhookAdapter[NoOptions]):
    """Linear workspace and OAuth app webhooks (Issue, Comment, Project, ... create/update/remove)."""

    name: ClassVar[str] = "linear"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook signing secret as UTF-8",
        signed_content="the raw body",
        encoding="lowercase hex, no prefix",
        timestamp=f"{TIMESTAMP_FIELD} in the signed JSON body, unix ms",
        dedupe_key=f"{DELIVERY_HEADER} header, else sha256 of the body",
        default_replay_window_s=60.0,
        delivery_timeout_s=5.0,
        accepted_status=200,  # Linear retries any non-200 status (developers.linear.app, webhooks)
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `Linear-Signature` against every secret, then read the signed `webhookTimestamp`."""
        candidate = decode_hex(request.signed_header(SIGNATURE_HEADER, self.name), 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=self._signed_at(request))

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `linear.<type>.<action>`, subject = the issue identifier or the entity id."""
        body = request.json_object()
        entity = body.get("type")
        if not isinstance(entity, str) or not entity:
            raise PayloadError("invalid_event", "the webhook has no string 'type'")
        action = body.get("action")
        return [
            NormalizedEvent(
                id=request.header(DELIVERY_HEADER) or body_sha256(request.body),
                type=f"{self.name}.{entity}.{action}"
                if isinstance(action, str) and action
                else f"{self.name}.{entity}",
                data=orjson.Fragment(request.body),
                subject=first_str(body, ("data", "identifier"), ("data", "id")),
                time=iso_time(body.get("createdAt")) or _ms_time(body.get(TIMESTAMP_FIELD)),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An `Issue` `create` webhook, `webhookTimestamp` = `now`."""
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Linear-Webhook",
            DELIVERY_HEADER: str(uuid.uuid4()),
            EVENT_HEADER: "Issue",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_issue_created(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `Linear-Signature`; the signed time is the body's own `webhookTimestamp`, not `now`."""
        return with_headers(request, {SIGNATURE_HEADER: hmac_digest("sha256", secret.value, request.body).hex()})

    def _signed_at(self, request: InboundRequest) -> float:
        """`webhookTimestamp` of the verified body in seconds; a body without one is refused."""
        value: Any = request.json_object().get(TIMESTAMP_FIELD)
        if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value < MAX_TIMESTAMP_MS:
            raise SignatureError(
                self.name, "malformed_signature", f"the signed body has no {TIMESTAMP_FIELD} in unix milliseconds"
            )
        return float(value) / 1000


def _ms_time(value: Any) -> datetime | None:
    """`webhookTimestamp` (unix ms) as a time when it is in the range `verify` accepts."""
    return unix_time(value, unit="ms") if type(value) is int and 0 <= value < MAX_TIMESTAMP_MS else None


def _issue_created(now: float) -> dict[str, Any]:
    created = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    issue_id, number = str(uuid.uuid4()), 100 + int(now) % 900
    return {
        "action": "create",
        "actor": {"id": "2e7a3f49-5d0c-4a5e-9e0b-3f6f1c2d4b11", "name": "Ada Lovelace", "type": "user"},
        "createdAt": created,
        "data": {
            "id": issue_id,
            "createdAt": created,
            "updatedAt": created,
            "number": number,
            "identifier": f"ENG-{number}",
            "title": "Checkout fails for saved cards",
            "priority": 2,
            "priorityLabel": "High",
            "teamId": "7b1b2f0e-4c55-4b6a-8f0e-0c2f9d8e1a22",
            "team": {"id": "7b1b2f0e-4c55-4b6a-8f0e-0c2f9d8e1a22", "key": "ENG", "name": "Engineering"},
            "state": {"id": "c02edc3a-2f4b-4b8e-9a4d-85c349766a13", "name": "Todo", "type": "unstarted"},
            "labelIds": [],
        },
        "url": f"https://linear.app/acme/issue/ENG-{number}/checkout-fails-for-saved-cards",
        "type": "Issue",
        "organizationId": "0c9f5e61-7a3e-4f0b-a2a4-1f0a6f1e9d33",
        "webhookTimestamp": int(now * 1000),
        "webhookId": "d1c2b3a4-5e6f-4a1b-9c8d-7e6f5a4b3c2d",
    }
