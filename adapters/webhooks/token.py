"""A shared token in a header, for senders that cannot sign: `Authorization: Bearer <token>` by default,
or any header (`X-Webhook-Token: <token>`), compared in constant time.

It authenticates the sender, not the body: use it only over TLS, and prefer a signing scheme
whenever the sender has one.
"""

from __future__ import annotations

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
from adapters.signing import matching_credential, with_headers
from adapters.webhooks.generic_events import HEADER_NAME, TYPE_PREFIX, EventFields, generic_events, generic_sample


class TokenOptions(EventFields):
    """Which header carries the token, its prefix, and where the delivery's id and type are."""

    header: str = Field("Authorization", pattern=HEADER_NAME, description="Header that carries the token.")
    prefix: str = Field("Bearer ", max_length=32, description="Literal text before the token ('' for none).")
    typePrefix: str = Field("token", pattern=TYPE_PREFIX, description="Event type prefix.")


class TokenAdapter(WebhookAdapter[TokenOptions]):
    """Any sender that can only send a shared token."""

    name: ClassVar[str] = "token"
    options_model: ClassVar[type[BaseModel]] = TokenOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header="the `header` option (default Authorization)",
        algorithm="shared token compared in constant time (no signature)",
        signed_content="nothing: the token authenticates the sender, not the body",
        encoding="the token as is after the `prefix` (default 'Bearer ')",
        timestamp=None,
        dedupe_key="`idHeader` or `idPath`, else sha256 of the body",
        replay_protection="the dedupe key only: the credential is the same for every request (TLS only)",
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """The token must equal one of the connector's secrets."""
        options = self.options
        header = request.signed_header(options.header, self.name)
        if not header.startswith(options.prefix) or len(header) == len(options.prefix):
            raise SignatureError(self.name, "malformed_signature", f"{options.header} lacks the configured prefix")
        key_id = matching_credential(self.name, secrets, header[len(options.prefix) :].encode())
        return Verification(scheme="token", key_id=key_id)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event, id and type where the options say."""
        return generic_events(request, self.options)

    def sample(self, now: float) -> TestRequest:
        """A small sample event."""
        return generic_sample(self.options, now)

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add the token header."""
        return with_headers(request, {self.options.header: self.options.prefix + secret.value.decode()})
