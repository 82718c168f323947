"""Resend: webhooks delivered by Svix (`svix-id`, `svix-timestamp`, `svix-signature`).

The body is `{"type": "email.delivered", "created_at": "<ISO 8601>", "data": {...}}`; email
events carry `data.email_id`, contact and domain events `data.id`. The signing secret is the
webhook's `whsec_...`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from adapters.base import SchemeInfo, TestRequest
from adapters.fields import iso_time, nested_str, required_str
from adapters.webhooks.standard_webhooks import new_message_id
from adapters.webhooks.svix import SVIX_ID, SvixAdapter, svix_scheme


class ResendAdapter(SvixAdapter):
    """Resend email, contact and domain events."""

    name: ClassVar[str] = "resend"
    scheme: ClassVar[SchemeInfo] = svix_scheme(f"{SVIX_ID} header (the Svix message id, kept on retries)")

    def event_type(self, body: dict[str, Any]) -> str:
        """Resend's `type`, e.g. `email.delivered` (required)."""
        return required_str(body, "type")

    def event_subject(self, body: dict[str, Any]) -> str | None:
        """The email (`data.email_id`), else the contact or domain (`data.id`)."""
        return nested_str(body, "data", "email_id") or nested_str(body, "data", "id")

    def event_time(self, body: dict[str, Any]) -> datetime | None:
        """The envelope's ISO 8601 `created_at`."""
        return iso_time(body.get("created_at"))

    def sample(self, now: float) -> TestRequest:
        """An `email.delivered` event."""
        headers = {"Content-Type": "application/json", SVIX_ID: new_message_id()}
        return TestRequest(headers=headers, body=orjson.dumps(_email_delivered(now)))


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _email_delivered(now: float) -> dict[str, Any]:
    return {
        "type": "email.delivered",
        "created_at": _iso(now),
        "data": {
            "created_at": datetime.fromtimestamp(now - 2, UTC).isoformat(timespec="microseconds"),
            "email_id": str(uuid.uuid4()),
            "from": "Acme <onboarding@resend.dev>",
            "to": ["delivered@resend.dev"],
            "subject": "Your receipt from Acme",
            "tags": {"category": "receipt"},
        },
    }
