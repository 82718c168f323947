"""HTTP Basic authentication, for senders that cannot sign: `Authorization: Basic base64(user:password)`.

The secret is the whole `user:password` credential. It authenticates the sender, not the body: use
it only over TLS, and prefer a signing scheme whenever the sender has one.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, Field

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
from adapters.signing import canonical_base64, matching_credential, with_headers
from adapters.webhooks.generic_events import TYPE_PREFIX, EventFields, generic_events, generic_sample

HEADER = "Authorization"
PREFIX = "Basic "


class BasicOptions(EventFields):
    """Where the delivery's id and type are (the credential itself is the connector's secret)."""

    typePrefix: str = Field("basic", pattern=TYPE_PREFIX, description="Event type prefix.")


class BasicAuthAdapter(WebhookAdapter[BasicOptions]):
    """Any sender that can only send HTTP Basic credentials."""

    name: ClassVar[str] = "basic"
    options_model: ClassVar[type[BaseModel]] = BasicOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=HEADER,
        algorithm="HTTP Basic credential user:password compared in constant time (no signature)",
        signed_content="nothing: the credential authenticates the sender, not the body",
        encoding="base64 of user:password after Basic",
        timestamp=None,
        dedupe_key="`idHeader` or `idPath`, else sha256 of the body",
        replay_protection="the dedupe key only: the credential is the same for every request (TLS only)",
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """The secret is `user:password`."""
        if b":" not in secret.value:
            raise ValueError("a basic-auth secret is user:password")

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """The credential must equal one of the connector's secrets."""
        header = request.signed_header(HEADER, self.name)
        if not header.startswith(PREFIX):
            raise SignatureError(self.name, "malformed_signature", f"{HEADER} is not Basic")
        credential = canonical_base64(header[len(PREFIX) :].strip())
        if credential is None:  # canonical only: a flipped low bit of the last character is no other spelling
            raise SignatureError(self.name, "malformed_signature", f"{HEADER} is not canonical base64")
        key_id = matching_credential(self.name, secrets, credential)
        return Verification(scheme="http-basic", key_id=key_id)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event, id and type where the options say."""
        return generic_events(request, self.options)

    def sample(self, now: float) -> TestRequest:
        """A small sample event."""
        return generic_sample(self.options, now)

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add the Basic credential."""
        return with_headers(request, {HEADER: PREFIX + base64.b64encode(secret.value).decode("ascii")})
