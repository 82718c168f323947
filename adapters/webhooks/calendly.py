"""Calendly webhooks: `Calendly-Webhook-Signature: t=<ts>,v1=<hex>` over `{t}.{raw body}`.

The HMAC key is the webhook signing key string as UTF-8 (set at subscription creation with a
personal access token, generated for OAuth apps). Calendly's docs reject timestamps older than
3 minutes in their verification example, hence the 180 s default window. Calendly sends no
delivery or event id, so the dedupe key is the SHA-256 of the body (retries resend the same body
with a new `t`; every event carries its own `created_at`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
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
from adapters.fields import iso_time, nested_str
from adapters.signing import (
    body_sha256,
    hmac_digest,
    matching_hmac,
    split_items,
    timestamped_signatures,
    with_headers,
)

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
SCHEME = "v1"
API = "https://api.calendly.com"


class CalendlyAdapter(WebhookAdapter[NoOptions]):
    """Calendly v2 webhook subscriptions (invitee, routing form, event type, contact events)."""

    name: ClassVar[str] = "calendly"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook signing key as UTF-8",
        signed_content="{t}.{raw body}",
        encoding="lowercase hex in v1=: t=<ts>,v1=<hex>",
        timestamp="t in Calendly-Webhook-Signature, unix seconds",
        dedupe_key="sha256 of the body (Calendly sends no delivery or event id)",
        default_replay_window_s=180.0,
        delivery_timeout_s=15.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the `v1` signature of `Calendly-Webhook-Signature` against every secret."""
        timestamp, signed_at, candidates = _parse_header(request.signed_header(SIGNATURE_HEADER, self.name), self.name)
        content = _signed_content(timestamp, request.body)
        key_id = matching_hmac(self.name, secrets, candidates, content)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `calendly.<event>`, subject = `payload.uri`, time = `created_at`."""
        body = request.json_object()
        event = body.get("event")
        if not isinstance(event, str) or not event:
            raise PayloadError("invalid_event", "the webhook has no string 'event'")
        return [
            NormalizedEvent(
                id=body_sha256(request.body),
                type=f"{self.name}.{event}",
                data=orjson.Fragment(request.body),
                subject=nested_str(body, "payload", "uri"),
                time=iso_time(body.get("created_at")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An `invitee.created` webhook for a 30-minute meeting."""
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Calendly"}
        return TestRequest(headers=headers, body=orjson.dumps(_invitee_created(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `Calendly-Webhook-Signature: t=<int(now)>,v1=<hex>`."""
        timestamp = str(int(now))
        signature = hmac_digest("sha256", secret.value, _signed_content(timestamp, request.body)).hex()
        return with_headers(request, {SIGNATURE_HEADER: f"t={timestamp},{SCHEME}={signature}"})


def _parse_header(header: str, provider: str) -> tuple[str, float, list[bytes]]:
    """The `t` value as sent and as unix seconds, and the decoded `v1` signatures (other keys ignored)."""
    items = split_items(header, provider, item_sep=",", pair_sep="=")
    return timestamped_signatures(items, provider, header=SIGNATURE_HEADER, timestamp_key="t", version=SCHEME)


def _signed_content(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode("ascii") + b"." + body


def _stamp(moment: datetime) -> str:
    """Calendly's timestamp format: UTC, microseconds, `Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _invitee_created(now: float) -> dict[str, Any]:
    created = datetime.fromtimestamp(now, UTC)
    start = (created + timedelta(days=2)).replace(hour=15, minute=0, second=0, microsecond=0)
    event_uuid, invitee_uuid = uuid.uuid4(), uuid.uuid4()
    scheduled_event = f"{API}/scheduled_events/{event_uuid}"
    return {
        "created_at": _stamp(created),
        "created_by": f"{API}/users/0b6a3d25-1d10-4e8f-b2b6-8a1f8b0e3d11",
        "event": "invitee.created",
        "payload": {
            "uri": f"{scheduled_event}/invitees/{invitee_uuid}",
            "email": "ada@example.com",
            "name": "Ada Lovelace",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "status": "active",
            "timezone": "Europe/London",
            "event": scheduled_event,
            "created_at": _stamp(created),
            "updated_at": _stamp(created),
            "rescheduled": False,
            "old_invitee": None,
            "new_invitee": None,
            "questions_and_answers": [{"question": "What would you like to discuss?", "answer": "The engine"}],
            "cancel_url": f"https://calendly.com/cancellations/{invitee_uuid}",
            "reschedule_url": f"https://calendly.com/reschedulings/{invitee_uuid}",
            "scheduled_event": {
                "uri": scheduled_event,
                "name": "30 Minute Meeting",
                "status": "active",
                "start_time": _stamp(start),
                "end_time": _stamp(start + timedelta(minutes=30)),
                "event_type": f"{API}/event_types/5a2d0b8e-4b7a-4c0e-9f0a-2b1f5e0c7d34",
                "location": {"type": "google_conference", "status": "pushed"},
            },
        },
    }
