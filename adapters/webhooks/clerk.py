"""Clerk: webhooks delivered by Svix (`svix-id`, `svix-timestamp`, `svix-signature`).

The body is Clerk's event envelope: `type` (`user.created`, `session.ended`, ...), `object:
"event"`, the resource in `data`, `instance_id`, and `timestamp` in unix milliseconds. The
signing secret is the endpoint's `whsec_...` (CLERK_WEBHOOK_SIGNING_SECRET).
"""

from __future__ import annotations

from datetime import datetime
from secrets import token_hex
from typing import Any, ClassVar

import orjson

from adapters.base import SchemeInfo, TestRequest
from adapters.fields import nested_str, required_str, unix_time
from adapters.webhooks.standard_webhooks import new_message_id
from adapters.webhooks.svix import SVIX_ID, SvixAdapter, svix_scheme


class ClerkAdapter(SvixAdapter):
    """Clerk user, session, organization, email and billing events."""

    name: ClassVar[str] = "clerk"
    scheme: ClassVar[SchemeInfo] = svix_scheme(f"{SVIX_ID} header (the Svix message id, kept on retries)")

    def event_type(self, body: dict[str, Any]) -> str:
        """Clerk's `type`, e.g. `user.created` (required)."""
        return required_str(body, "type")

    def event_subject(self, body: dict[str, Any]) -> str | None:
        """The resource's id: `data.id` (`user_...`, `sess_...`, `org_...`)."""
        return nested_str(body, "data", "id")

    def event_time(self, body: dict[str, Any]) -> datetime | None:
        """The envelope's `timestamp`, unix milliseconds."""
        return unix_time(body.get("timestamp"), unit="ms")

    def sample(self, now: float) -> TestRequest:
        """A `user.created` event."""
        headers = {"Content-Type": "application/json", SVIX_ID: new_message_id()}
        return TestRequest(headers=headers, body=orjson.dumps(_user_created(now)))


def _user_created(now: float) -> dict[str, Any]:
    now_ms = int(now * 1000)
    email_id = "idn_" + token_hex(13)
    return {
        "data": {
            "id": "user_" + token_hex(13),
            "object": "user",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "username": None,
            "email_addresses": [
                {
                    "id": email_id,
                    "object": "email_address",
                    "email_address": "ada@example.com",
                    "linked_to": [],
                    "verification": {"status": "verified", "strategy": "email_code"},
                }
            ],
            "primary_email_address_id": email_id,
            "phone_numbers": [],
            "external_accounts": [],
            "public_metadata": {},
            "private_metadata": {},
            "unsafe_metadata": {},
            "password_enabled": True,
            "two_factor_enabled": False,
            "created_at": now_ms - 250,
            "updated_at": now_ms - 250,
            "last_sign_in_at": None,
        },
        "event_attributes": {"http_request": {"client_ip": "192.0.2.1", "user_agent": "Mozilla/5.0"}},
        "instance_id": "ins_" + token_hex(13),
        "object": "event",
        "timestamp": now_ms,
        "type": "user.created",
    }
