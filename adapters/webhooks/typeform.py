"""Typeform webhooks: `Typeform-Signature: sha256=<base64>` over the raw body.

HMAC-SHA256 keyed by the webhook's secret (UTF-8, set per webhook in the form's Connect > Webhooks or
the API's `secret` field) over the raw body, base64 after a literal `sha256=`. Typeform signs no
timestamp, so replay protection rests on the body's `event_id`, which is signed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from secrets import choice, token_hex
from string import ascii_uppercase, digits
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
from adapters.fields import iso_time, nested_str, required_str
from adapters.signing import after_prefix, decode_base64, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "Typeform-Signature"
PREFIX = "sha256="


class TypeformAdapter(WebhookAdapter[NoOptions]):
    """Typeform form-response webhooks (`form_response`, `form_response_partial`)."""

    name: ClassVar[str] = "typeform"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook's secret as UTF-8",
        signed_content="the raw body",
        encoding="base64, prefixed sha256=",
        timestamp=None,
        dedupe_key="body event_id",
        delivery_timeout_s=30.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `Typeform-Signature` against every secret."""
        header = after_prefix(request.signed_header(SIGNATURE_HEADER, self.name), PREFIX, SIGNATURE_HEADER, self.name)
        candidate = decode_base64(header, 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = `event_id`, `typeform.<event_type>`, subject = the form, time = submission."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=required_str(body, "event_id"),
                type=f"{self.name}.{required_str(body, 'event_type')}",
                data=orjson.Fragment(request.body),
                subject=nested_str(body, "form_response", "form_id"),
                time=iso_time(nested_str(body, "form_response", "submitted_at")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `form_response` with two answers."""
        headers = {"Content-Type": "application/json", "User-Agent": "Typeform Webhooks"}
        return TestRequest(headers=headers, body=orjson.dumps(_form_response(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `Typeform-Signature: sha256=<base64>`."""
        digest = hmac_digest("sha256", secret.value, request.body)
        return with_headers(request, {SIGNATURE_HEADER: PREFIX + base64.b64encode(digest).decode("ascii")})


def _ulid() -> str:
    return "01" + "".join(choice(digits + ascii_uppercase) for _ in range(24))


def _form_response(now: float) -> dict[str, Any]:
    submitted = datetime.fromtimestamp(int(now), UTC)
    fields = [
        {"id": "JwWggjAKtOkA", "ref": "name", "type": "short_text", "title": "What is your name?"},
        {"id": "SMEUb7VJz92Q", "ref": "email", "type": "email", "title": "Your email?"},
    ]
    return {
        "event_id": _ulid(),
        "event_type": "form_response",
        "form_response": {
            "form_id": "lT4Z3j",
            "token": token_hex(16),
            "landed_at": (submitted - timedelta(minutes=2)).isoformat().replace("+00:00", "Z"),
            "submitted_at": submitted.isoformat().replace("+00:00", "Z"),
            "hidden": {"utm_source": "newsletter"},
            "definition": {"id": "lT4Z3j", "title": "Webhooks example", "fields": fields},
            "answers": [
                {"type": "text", "text": "Ada Lovelace", "field": {k: fields[0][k] for k in ("id", "ref", "type")}},
                {
                    "type": "email",
                    "email": "ada@example.com",
                    "field": {k: fields[1][k] for k in ("id", "ref", "type")},
                },
            ],
            "ending": {"id": "DefaultTyScreen", "ref": "default_tys"},
        },
    }
