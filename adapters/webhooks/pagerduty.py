"""PagerDuty v3 webhooks: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]` over the raw body.

PagerDuty adds one `v1` signature per active signing secret of the subscription (zero-downtime
rotation on its side); the request verifies when any of them matches any of our secrets. The
secret string is the HMAC key as UTF-8 (not base64-decoded). No timestamp is signed: replay
protection rests on the signed `event.id`.
"""

from __future__ import annotations

import uuid
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
from adapters.errors import PayloadError
from adapters.fields import iso_time
from adapters.signing import (
    MAX_SIGNATURE_ITEMS,
    decode_hex,
    hmac_digest,
    matching_hmac,
    signatures,
    split_items,
    with_headers,
)

SIGNATURE_HEADER = "X-PagerDuty-Signature"
WEBHOOK_ID_HEADER = "X-Webhook-Id"
SCHEME = "v1"
_ID_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"


class PagerDutyAdapter(WebhookAdapter[NoOptions]):
    """PagerDuty v3 webhook subscriptions (one event per delivery)."""

    name: ClassVar[str] = "pagerduty"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the subscription's secret string as UTF-8",
        signed_content="the raw body",
        encoding=f"lowercase hex in comma-separated v1= items (one per active secret, at most {MAX_SIGNATURE_ITEMS})",
        timestamp=None,
        dedupe_key="body event.id",
        delivery_timeout_s=5.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Accept when any `v1` signature matches any secret; other versions are ignored."""
        candidates = _candidates(request.signed_header(SIGNATURE_HEADER, self.name), self.name)
        key_id = matching_hmac(self.name, secrets, candidates, request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `pagerduty.<event_type>`, subject = the incident (or service), time = `occurred_at`."""
        event = request.json_object().get("event")
        if not isinstance(event, dict):
            raise PayloadError("invalid_event", "the body has no 'event' object")
        event_id, event_type = event.get("id"), event.get("event_type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str) or not event_type:
            raise PayloadError("invalid_event", "the event has no string id or event_type")
        return [
            NormalizedEvent(
                id=event_id,
                type=f"{self.name}.{event_type}",
                data=orjson.Fragment(request.body),
                subject=_subject(event.get("data")),
                time=iso_time(event.get("occurred_at")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An `incident.triggered` event."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            WEBHOOK_ID_HEADER: str(uuid.uuid4()),
            "X-Webhook-Subscription": "PY1OQGB",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_incident_triggered(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-PagerDuty-Signature: v1=<hex>` (one secret, so one signature)."""
        signature = hmac_digest("sha256", secret.value, request.body).hex()
        return with_headers(request, {SIGNATURE_HEADER: f"{SCHEME}={signature}"})


def _candidates(header: str, provider: str) -> list[bytes]:
    """The decoded `v1` signatures of a bounded, comma-separated list."""
    items = split_items(header, provider, item_sep=",", pair_sep="=")
    return signatures(
        items, SCHEME, lambda value: decode_hex(value, 32, provider), header=SIGNATURE_HEADER, provider=provider
    )


def _subject(data: Any) -> str | None:
    """The incident (or service) the event is about: `data` itself, or the one it refers to."""
    if not isinstance(data, dict):
        return None
    candidates: list[Any] = [data] if data.get("type") in ("incident", "service") else []
    candidates += [data.get("incident"), data.get("service"), data]
    for candidate in candidates:
        if isinstance(candidate, dict) and isinstance(value := candidate.get("id"), str) and value:
            return value
    return None


def _pd_id(length: int) -> str:
    return "".join(choice(_ID_CHARS) for _ in range(length))


def _incident_triggered(now: float) -> dict[str, Any]:
    occurred = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    incident = "Q" + _pd_id(13)
    api, web = "https://api.pagerduty.com", "https://acme.pagerduty.com"
    return {
        "event": {
            "id": _pd_id(26),
            "event_type": "incident.triggered",
            "resource_type": "incident",
            "occurred_at": occurred,
            "agent": None,
            "client": None,
            "data": {
                "id": incident,
                "type": "incident",
                "self": f"{api}/incidents/{incident}",
                "html_url": f"{web}/incidents/{incident}",
                "number": 1000 + int(now) % 9000,
                "status": "triggered",
                "incident_key": uuid.uuid4().hex,
                "created_at": occurred,
                "title": "Checkout latency above 2 s",
                "service": {"id": "PF9KMXH", "type": "service_reference", "summary": "API Service"},
                "assignees": [{"id": "PTUXL6G", "type": "user_reference", "summary": "Ada Lovelace"}],
                "escalation_policy": {"id": "PUS0KTE", "type": "escalation_policy_reference", "summary": "Default"},
                "teams": [{"id": "PFCVPS0", "type": "team_reference", "summary": "Engineering"}],
                "priority": {"id": "PSO75BM", "type": "priority_reference", "summary": "P1"},
                "urgency": "high",
                "conference_bridge": None,
                "resolve_reason": None,
            },
        }
    }
