"""Svix: Standard Webhooks `v1` signatures sent under `svix-id`, `svix-timestamp`, `svix-signature`.

The scheme is Standard Webhooks' (`{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed by the base64
after `whsec_`); only the header names differ. White-labelled Svix accounts send the `webhook-*`
names instead. As in the svix SDK (`svix.webhooks.Webhook.verify`), the `svix-*` headers are read
when present, else the `webhook-*` ones; one family is read as a whole, never a mix of the two.
Clerk and Resend deliver through Svix and subclass this adapter for their payloads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson

from adapters.base import (
    InboundRequest,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
)
from adapters.errors import PayloadError
from adapters.fields import iso_time, nested_str
from adapters.signing import header_of, with_headers
from adapters.webhooks.standard_webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    StandardWebhooksAdapter,
)

SVIX_ID = "svix-id"
SVIX_TIMESTAMP = "svix-timestamp"
SVIX_SIGNATURE = "svix-signature"
SVIX_TO_STANDARD = {SVIX_ID: ID_HEADER, SVIX_TIMESTAMP: TIMESTAMP_HEADER, SVIX_SIGNATURE: SIGNATURE_HEADER}


def svix_scheme(dedupe_key: str = f"{SVIX_ID} header (or {ID_HEADER})") -> SchemeInfo:
    """The scheme facts every Svix sender shares."""
    return SchemeInfo(
        signature_header=f"{SVIX_SIGNATURE} (white-label: {SIGNATURE_HEADER})",
        algorithm="HMAC-SHA256, key = base64-decoded part after whsec_ (other values: raw bytes)",
        signed_content=f"{{{SVIX_ID}}}.{{{SVIX_TIMESTAMP}}}.{{raw body}}",
        encoding="base64 in space-separated v1,<sig> items (v1a items ignored)",
        timestamp=f"{SVIX_TIMESTAMP} header (or {TIMESTAMP_HEADER}), unix seconds",
        dedupe_key=dedupe_key,
        default_replay_window_s=300.0,
        delivery_timeout_s=15.0,
        dedupe_key_signed=True,
    )


class SvixAdapter(StandardWebhooksAdapter):
    """Any application sending its webhooks through Svix."""

    name: ClassVar[str] = "svix"
    scheme: ClassVar[SchemeInfo] = svix_scheme()

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Verify as Standard Webhooks after reading the `svix-*` (or `webhook-*`) headers."""
        return super().verify(_as_standard(request, self.name), secrets)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = `svix-id`, `<name>.<body type>`, subject and time from the payload."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=message_id(request),
                type=f"{self.name}.{self.event_type(body)}",
                data=orjson.Fragment(request.body),
                subject=self.event_subject(body),
                time=self.event_time(body),
            )
        ]

    def event_type(self, body: dict[str, Any]) -> str:
        """The body's `type`, or `event` (a Svix payload's shape is the sending application's)."""
        value = body.get("type")
        return value if isinstance(value, str) and value else "event"

    def event_subject(self, body: dict[str, Any]) -> str | None:
        """`data.id` when the payload has one."""
        return nested_str(body, "data", "id")

    def event_time(self, body: dict[str, Any]) -> datetime | None:
        """The body's RFC 3339 `timestamp` (the Standard Webhooks payload convention)."""
        return iso_time(body.get("timestamp"))

    def sample(self, now: float) -> TestRequest:
        """The Standard Webhooks sample with its id under `svix-id`."""
        return _to_svix(super().sample(now))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `svix-id` (if missing), `svix-timestamp` and `svix-signature` as Svix sends them."""
        msg_id = header_of(request, SVIX_ID) or header_of(request, ID_HEADER)
        headers = {name: value for name, value in request.headers.items() if name.lower() not in _ALL_NAMES}
        if msg_id is not None:
            headers[ID_HEADER] = msg_id
        return _to_svix(super().sign(TestRequest(headers=headers, body=request.body), secret, now))


_ALL_NAMES = frozenset(SVIX_TO_STANDARD) | frozenset(SVIX_TO_STANDARD.values())


def _as_standard(request: InboundRequest, provider: str) -> InboundRequest:
    """`request` with its `svix-*` headers renamed `webhook-*` (any `webhook-*` dropped).

    Only a request with `webhook-*` headers and no `svix-*` one is passed on unchanged.
    """
    headers = request.headers
    if not any(name in headers for name in SVIX_TO_STANDARD) and any(
        name in headers for name in SVIX_TO_STANDARD.values()
    ):
        return request  # a white-labelled sender: the webhook-* names as Standard Webhooks reads them
    for name in SVIX_TO_STANDARD:
        request.signed_header(name, provider)  # missing or repeated: refused under its real name
    kept = [(name, value) for name, value in headers.items() if name.lower() not in _ALL_NAMES]
    renamed = [(standard, headers[svix]) for svix, standard in SVIX_TO_STANDARD.items()]
    return InboundRequest(
        method=request.method,
        url=request.url,
        headers=kept + renamed,
        body=request.body,
        received_at=request.received_at,
        query=request.query,
    )


def _to_svix(request: TestRequest) -> TestRequest:
    """A test request with its `webhook-*` headers renamed `svix-*`."""
    renamed = {svix: value for svix, standard in SVIX_TO_STANDARD.items() if (value := header_of(request, standard))}
    kept = {name: value for name, value in request.headers.items() if name.lower() not in _ALL_NAMES}
    return with_headers(TestRequest(headers=kept, body=request.body), renamed)


def message_id(request: InboundRequest) -> str:
    """The Svix message id (`svix-id`, else `webhook-id`): the same on every retry of a message."""
    msg_id = request.header(SVIX_ID) or request.header(ID_HEADER)
    if not msg_id:
        raise PayloadError("invalid_event", f"header {SVIX_ID} is missing")
    return msg_id
