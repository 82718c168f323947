"""HubSpot webhooks, signature v3: `X-HubSpot-Signature-v3: <base64>` over method + URI + body + timestamp.

HMAC-SHA256 keyed by the app's client secret (UTF-8) over `{method}{uri}{raw body}{timestamp}`, as
hubspot-api-client 12.0.0 `Signature.get_signature(..., "v3", ...)` computes it. The URI is the URL
HubSpot called: the `publicUrl` option (a proxy or TLS terminator changes what the hub sees), else
the URL the request arrived at, with the percent-escapes HubSpot's validating-requests page lists
decoded. `X-HubSpot-Request-Timestamp` is in milliseconds; HubSpot rejects requests older than
5 minutes. The legacy `X-HubSpot-Signature` (v1/v2: plain SHA-256, no timestamp) is never a fallback.
The body is a JSON array: one event per element.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from secrets import randbelow
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
from adapters.errors import PayloadError
from adapters.fields import unix_time
from adapters.signing import decode_base64, hmac_digest, matching_hmac, parse_timestamp, with_headers

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
LEGACY_SIGNATURE_HEADER = "X-HubSpot-Signature"
LEGACY_VERSION_HEADER = "X-HubSpot-Signature-Version"
PUBLIC_URL = r"^https?://[^\s#]+$"

_DECODED = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)")
"""The escapes HubSpot decodes in the URI before signing (`: / ? @ ! $ ' ( ) * , ;`), as its table spells them."""


class HubSpotOptions(BaseModel):
    """Options of the HubSpot adapter (`spec.webhook.options`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publicUrl: str | None = Field(
        None,
        pattern=PUBLIC_URL,
        max_length=2048,
        description="The URL HubSpot calls, exactly as the app's target URL (scheme, host, path, query); "
        "set it when a proxy or TLS terminator changes the URL the hub sees. Default: the URL received.",
    )


class HubSpotAdapter(WebhookAdapter[HubSpotOptions]):
    """HubSpot app webhooks (Webhooks API subscriptions), batched, signed with signature v3."""

    name: ClassVar[str] = "hubspot"
    options_model: ClassVar[type[BaseModel]] = HubSpotOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the app's client secret as UTF-8",
        signed_content="{method}{uri}{raw body}{X-HubSpot-Request-Timestamp}; uri = publicUrl or the URL received, "
        "with %3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B decoded",
        encoding="base64, no prefix",
        timestamp=f"{TIMESTAMP_HEADER} header, unix milliseconds",
        dedupe_key="per event {portalId}-{subscriptionId}-{eventId} (HubSpot: eventId alone is not guaranteed unique)",
        default_replay_window_s=300.0,
        delivery_timeout_s=5.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-HubSpot-Signature-v3` against every secret; the signed timestamp is returned in seconds."""
        candidate = decode_base64(request.signed_header(SIGNATURE_HEADER, self.name), 32, self.name)
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        signed_at = parse_timestamp(timestamp, self.name, unit="ms")
        content = signed_content(request.method, self.options.publicUrl or request.url, request.body, timestamp)
        key_id = matching_hmac(self.name, secrets, [candidate], content)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event per element: `hubspot.<subscriptionType>`, subject = objectId, time from occurredAt (ms)."""
        batch = request.json()
        if not isinstance(batch, list) or not batch:
            raise PayloadError("invalid_json", "the body is not a non-empty JSON array of events")
        events = []
        for item in batch:
            if not isinstance(item, dict):
                raise PayloadError("invalid_event", "an element of the batch is not a JSON object")
            subscription_type = item.get("subscriptionType")
            if not isinstance(subscription_type, str) or not subscription_type:
                raise PayloadError("invalid_event", "an event has no string 'subscriptionType'")
            events.append(
                NormalizedEvent(
                    id="-".join(_identifier(item, key) for key in ("portalId", "subscriptionId", "eventId")),
                    type=f"{self.name}.{subscription_type}",
                    data=item,
                    subject=_optional_identifier(item.get("objectId")),
                    time=unix_time(item.get("occurredAt"), unit="ms"),
                )
            )
        return events

    def sample(self, now: float) -> TestRequest:
        """A batch of two events: a contact created, then its lifecycle stage set."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio-http-client)",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_batch(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add the v3 signature and timestamp (ms), and the legacy v1 header HubSpot also sends.

        The URI is part of the signed content, so signing needs the `publicUrl` option.
        """
        if self.options.publicUrl is None:
            raise ValueError("hubspot signs the URL it calls: set the publicUrl option to sign a request")
        timestamp = str(round(now * 1000))
        content = signed_content("POST", self.options.publicUrl, request.body, timestamp)
        return with_headers(
            request,
            {
                LEGACY_SIGNATURE_HEADER: hashlib.sha256(secret.value + request.body).hexdigest(),
                LEGACY_VERSION_HEADER: "v1",
                SIGNATURE_HEADER: base64.b64encode(hmac_digest("sha256", secret.value, content)).decode("ascii"),
                TIMESTAMP_HEADER: timestamp,
            },
        )


def signed_content(method: str, url: str, body: bytes, timestamp: str) -> bytes:
    """`{method}{uri}{body}{timestamp}` as HubSpot signs it: the URI with its listed escapes decoded."""
    uri = _DECODED.sub(lambda match: chr(int(match[1], 16)), url)
    return f"{method}{uri}".encode() + body + timestamp.encode("ascii")


def _identifier(item: dict[str, Any], key: str) -> str:
    value = _optional_identifier(item.get(key))
    if value is None:
        raise PayloadError("invalid_event", f"an event has no integer {key!r}")
    return value


def _optional_identifier(value: Any) -> str | None:
    """A HubSpot id (a JSON integer, or a string of digits) as text, else None."""
    if type(value) is int and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 32:
        return value
    return None


def _batch(now: float) -> list[dict[str, Any]]:
    occurred = round(now * 1000) - 1500
    event_id, contact_id = 1_000_000_000 + randbelow(10**9), 100_000 + randbelow(10**8)
    common = {"portalId": 62515, "appId": 1160452, "attemptNumber": 0, "objectId": contact_id}
    return [
        {
            "eventId": event_id,
            "subscriptionId": 2338841,
            "occurredAt": occurred,
            "subscriptionType": "contact.creation",
            "changeFlag": "CREATED",
            "changeSource": "CRM_UI",
            "sourceId": "userId:45678",
            **common,
        },
        {
            "eventId": event_id + 1,
            "subscriptionId": 2338842,
            "occurredAt": occurred + 120,
            "subscriptionType": "contact.propertyChange",
            "propertyName": "lifecyclestage",
            "propertyValue": "lead",
            "changeSource": "CRM_UI",
            "sourceId": "userId:45678",
            **common,
        },
    ]
