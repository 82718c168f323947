"""Standard Webhooks (Svix and others): `webhook-signature: v1,<base64>[ v1,<base64>...]`.

The signed content is `{webhook-id}.{webhook-timestamp}.{raw body}` under HMAC-SHA256. A secret
`whsec_<base64>` is base64-decoded (as the `standardwebhooks` library does); any other value is
used as raw key bytes. Only `v1` (symmetric) is supported; `v1a` (Ed25519) items are ignored.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from secrets import choice
from string import ascii_letters, digits
from typing import ClassVar

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
from adapters.errors import SignatureError
from adapters.fields import iso_time, required_header
from adapters.signing import (
    decode_base64,
    header_of,
    hmac_digest,
    matching_hmac,
    parse_timestamp,
    signatures,
    split_items,
    with_headers,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SCHEME = "v1"
SECRET_PREFIX = b"whsec_"
KEY_BYTES = range(24, 65)
"""The spec's symmetric key size for `whsec_` secrets: at least 24 bytes (192 bits), at most 512 bits."""

_MESSAGE_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
"""Printable ASCII without `.`: the spec forbids `.` in ids, which would make the signed content ambiguous."""


class StandardWebhooksAdapter(WebhookAdapter[NoOptions]):
    """Senders following the Standard Webhooks specification (symmetric `v1` signatures)."""

    name: ClassVar[str] = "standard-webhooks"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = base64-decoded part after whsec_ (other values: raw bytes)",
        signed_content="{webhook-id}.{webhook-timestamp}.{raw body}",
        encoding="base64 in space-separated v1,<sig> items",
        timestamp="webhook-timestamp header, unix seconds",
        dedupe_key="webhook-id header",
        delivery_timeout_s=15.0,
        dedupe_key_signed=True,
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """A `whsec_` secret must be base64 of 24 to 64 bytes; any other value is a raw, non-empty key."""
        _key(secret)

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check every `v1` signature against every secret over `{id}.{timestamp}.{body}`."""
        msg_id = request.signed_header(ID_HEADER, self.name)
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        candidates = _candidates(request.signed_header(SIGNATURE_HEADER, self.name), self.name)
        if not _MESSAGE_ID.fullmatch(msg_id):
            raise SignatureError(
                self.name, "malformed_signature", f"{ID_HEADER} is not 1-256 printable chars without '.'"
            )
        signed_at = parse_timestamp(timestamp, self.name)
        content = _signed_content(msg_id, timestamp, request.body)
        key_id = matching_hmac(self.name, secrets, candidates, content, key=_key)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = `webhook-id`, `standard-webhooks.<type>`, time from the body `timestamp`."""
        body = request.json_object()
        msg_id = required_header(request, ID_HEADER)
        event_type = body.get("type")
        return [
            NormalizedEvent(
                id=msg_id,
                type=f"{self.name}.{event_type if isinstance(event_type, str) and event_type else 'event'}",
                data=orjson.Fragment(request.body),
                time=iso_time(body.get("timestamp")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `user.created` event with a fresh `webhook-id`."""
        body = {
            "type": "user.created",
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "data": {
                "id": "user_" + _base62(27),
                "object": "user",
                "email_addresses": [{"email_address": "ada@example.com", "verification": {"status": "verified"}}],
                "first_name": "Ada",
                "last_name": "Lovelace",
                "created_at": int(now * 1000),
            },
        }
        headers = {"Content-Type": "application/json", ID_HEADER: new_message_id()}
        return TestRequest(headers=headers, body=orjson.dumps(body))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `webhook-timestamp` and `webhook-signature` (and a `webhook-id` if the request has none)."""
        msg_id = header_of(request, ID_HEADER) or new_message_id()
        timestamp = str(int(now))
        digest = hmac_digest("sha256", _key(secret), _signed_content(msg_id, timestamp, request.body))
        signature = f"{SCHEME},{base64.b64encode(digest).decode('ascii')}"
        return with_headers(request, {ID_HEADER: msg_id, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature})


def _key(secret: SigningSecret) -> bytes:
    """The HMAC key of a secret, or ValueError naming only its key id."""
    value = secret.value
    if value.startswith(SECRET_PREFIX):
        encoded = value[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"secret {secret.key_id}: the part after whsec_ is not base64") from None
        if len(key) not in KEY_BYTES:
            raise ValueError(f"secret {secret.key_id}: a whsec_ key must decode to 24 to 64 bytes")
        return key
    if not value:
        raise ValueError(f"secret {secret.key_id} is empty")
    return value


def _candidates(header: str, provider: str) -> list[bytes]:
    """The decoded `v1` signatures; other versions (`v1a`) are ignored, never decoded."""
    items = split_items(header, provider, item_sep=" ", pair_sep=",")
    decode = partial(decode_base64, nbytes=32, provider=provider)
    return signatures(items, SCHEME, decode, header=SIGNATURE_HEADER, provider=provider, label=SCHEME)


def _signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def new_message_id() -> str:
    """A fresh message id as Svix writes them: `msg_` and 27 base62 characters."""
    return "msg_" + _base62(27)


def _base62(length: int) -> str:
    return "".join(choice(digits + ascii_letters) for _ in range(length))
