"""Generic HMAC webhooks: a sender's custom scheme described by options (header, algorithm, content).

For senders without a dedicated adapter, e.g. `X-Signature: sha256=<hex>` over the raw body, or
`X-Sig: <base64>` over `{timestamp}.{body}` with `X-Timestamp`. The signature length is exact for
the algorithm and encoding; hex is lowercase, base64 is canonical standard base64 with padding.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Sequence
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator

from adapters.base import (
    InboundRequest,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import SignatureError
from adapters.signing import (
    DIGEST_SIZES,
    decode_base64,
    decode_hex,
    header_of,
    hmac_digest,
    matching_hmac,
    parse_timestamp,
    with_headers,
)
from adapters.webhooks.generic_events import HEADER_NAME, TYPE_PREFIX, EventFields, generic_events, generic_sample

PLACEHOLDERS = ("{body}", "{timestamp}", "{id}")
_PLACEHOLDER = re.compile(r"(\{body\}|\{timestamp\}|\{id\})")


class HmacOptions(EventFields):
    """Options of the generic HMAC adapter (`spec.webhook.options`)."""

    header: str = Field(pattern=HEADER_NAME, description="Header that carries the signature, e.g. X-Signature.")
    algorithm: Literal["sha1", "sha256", "sha512"] = Field("sha256", description="HMAC hash function.")
    encoding: Literal["hex", "base64"] = Field(
        "hex", description="Signature encoding: lowercase hex, or standard base64 with padding."
    )
    prefix: str = Field("", max_length=64, description="Literal text before the signature, e.g. 'sha256='.")
    timestampHeader: str | None = Field(
        None, pattern=HEADER_NAME, description="Header with the signed unix timestamp; requires {timestamp}."
    )
    timestampUnit: Literal["s", "ms"] = Field("s", description="Unit of the timestamp header: seconds or ms.")
    signedContent: str = Field(
        "{body}",
        max_length=256,
        description="Template of the signed bytes: {body} exactly once, optionally {timestamp} and {id}.",
    )
    typePrefix: str = Field(
        "hmac", pattern=TYPE_PREFIX, description="Event type prefix: type = <typePrefix>.<type value or 'event'>."
    )

    @field_validator("signedContent")
    @classmethod
    def _known_placeholders(cls, template: str) -> str:
        """`{body}` exactly once (an unsigned body authenticates nothing); no other braces."""
        if template.count("{body}") != 1:
            raise ValueError("must contain {body} exactly once")
        rest = _PLACEHOLDER.sub("", template)
        if "{" in rest or "}" in rest:
            raise ValueError(f"unknown placeholder; allowed: {', '.join(PLACEHOLDERS)}")
        return template

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Reject option combinations that leave a value unsigned or ambiguous."""
        if ("{timestamp}" in self.signedContent) != (self.timestampHeader is not None):
            raise ValueError("signedContent: {timestamp} and timestampHeader must be used together")
        if "{id}" in self.signedContent and self.idHeader is None:
            raise ValueError("signedContent: {id} requires idHeader")
        return self


class HmacAdapter(WebhookAdapter[HmacOptions]):
    """Any sender with a custom HMAC scheme, configured by `HmacOptions`."""

    name: ClassVar[str] = "hmac"
    options_model: ClassVar[type[BaseModel]] = HmacOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header="the `header` option",
        algorithm="HMAC-SHA1, HMAC-SHA256 or HMAC-SHA512 (`algorithm`), key = the secret bytes",
        signed_content="the `signedContent` template ({body}, {timestamp}, {id}), default the raw body",
        encoding="lowercase hex or base64 (`encoding`) after a literal `prefix`",
        timestamp="the `timestampHeader` option, seconds or ms (`timestampUnit`), if set",
        dedupe_key="`idHeader` or `idPath`, else sha256 of the body",
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the configured signature header against every secret."""
        options = self.options
        candidate = self._decode(request.signed_header(options.header, self.name))
        timestamp = self._signed_value(request, options.timestampHeader)
        msg_id = self._signed_value(request, options.idHeader if "{id}" in options.signedContent else None)
        signed_at = None if timestamp is None else parse_timestamp(timestamp, self.name, unit=options.timestampUnit)
        content = _render(options.signedContent, request.body, timestamp, msg_id)
        key_id = matching_hmac(self.name, secrets, [candidate], content, options.algorithm)
        return Verification(scheme=f"hmac-{options.algorithm}", key_id=key_id, signed_at=signed_at)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id and type from the configured header or body path."""
        return generic_events(request, self.options)

    def sample(self, now: float) -> TestRequest:
        """A small `sample.created` event with the id and type where the options look for them."""
        return generic_sample(self.options, now)

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add the signature header (and timestamp and id headers) as the options describe."""
        options = self.options
        timestamp = None
        if options.timestampHeader:
            timestamp = str(int(now * 1000) if options.timestampUnit == "ms" else int(now))
        msg_id = None
        if options.idHeader and "{id}" in options.signedContent:
            msg_id = header_of(request, options.idHeader) or str(uuid.uuid4())
        digest = hmac_digest(
            options.algorithm, secret.value, _render(options.signedContent, request.body, timestamp, msg_id)
        )
        encoded = digest.hex() if options.encoding == "hex" else base64.b64encode(digest).decode("ascii")
        added = {options.timestampHeader: timestamp, options.idHeader: msg_id, options.header: options.prefix + encoded}
        return with_headers(request, {name: value for name, value in added.items() if name and value})

    def _signed_value(self, request: InboundRequest, header: str | None) -> str | None:
        return request.signed_header(header, self.name) if header else None

    def _decode(self, header: str) -> bytes:
        prefix, nbytes = self.options.prefix, DIGEST_SIZES[self.options.algorithm]
        if not header.startswith(prefix):
            raise SignatureError(self.name, "malformed_signature", f"{self.options.header} lacks the configured prefix")
        value = header[len(prefix) :]
        if self.options.encoding == "hex":
            return decode_hex(value, nbytes, self.name)
        return decode_base64(value, nbytes, self.name)


def _render(template: str, body: bytes, timestamp: str | None, msg_id: str | None) -> bytes:
    """The signed bytes: the template with placeholders replaced, the body as raw bytes."""
    values = {"{body}": body, "{timestamp}": (timestamp or "").encode(), "{id}": (msg_id or "").encode()}
    return b"".join(values.get(part, part.encode()) for part in _PLACEHOLDER.split(template))
