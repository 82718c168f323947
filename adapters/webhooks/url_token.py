"""A signed ingress URL, for senders that can send nothing but a request to a URL:
`/hooks/<tenant>/<connector>?token=<itsdangerous token>`.

The token is the connector's identity signed with the connector's secret (itsdangerous, HMAC-SHA1
by default, salted for this use); `connector-hub url-token TENANT/CONNECTOR` issues it. Pointing
every url-token connector at one secret (the hub's signing key, `HUB_SIGNING_KEY`) makes rotating
that key revoke every issued URL at once. It authenticates the URL, not the body: treat the URL as
a credential and use it only over TLS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeSerializer
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
from adapters.signing import is_canonical_base64url
from adapters.webhooks.generic_events import TYPE_PREFIX, EventFields, generic_events, generic_sample

SALT = "connector-hub.url-token.v1"
PARAM = "token"
MAX_TOKEN_CHARS = 512


class UrlTokenOptions(EventFields):
    """Where the delivery's id and type are (the URL's token is checked against the connector's secrets)."""

    typePrefix: str = Field("url", pattern=TYPE_PREFIX, description="Event type prefix.")


def issue_token(secret: bytes, tenant: str, connector: str) -> str:
    """The token that admits requests to `/hooks/<tenant>/<connector>` while `secret` is active."""
    return str(URLSafeSerializer(secret, salt=SALT).dumps([tenant, connector]))


class UrlTokenAdapter(WebhookAdapter[UrlTokenOptions]):
    """Any sender that can only be given a URL."""

    name: ClassVar[str] = "url-token"
    options_model: ClassVar[type[BaseModel]] = UrlTokenOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=f"the `{PARAM}` query parameter",
        algorithm="itsdangerous URLSafeSerializer (HMAC-SHA1, salted) over [tenant, connector]",
        signed_content="the connector's identity, not the body",
        encoding="itsdangerous URL-safe token",
        timestamp=None,
        dedupe_key="`idHeader` or `idPath`, else sha256 of the body",
        replay_protection="the dedupe key only: the credential is the same for every request (TLS only)",
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """The token must be signed by one of the connector's secrets, for this very connector's path."""
        token = request.query.get(PARAM)
        if not token:
            raise SignatureError(self.name, "missing_header", f"the {PARAM} query parameter is missing")
        if len(token) > MAX_TOKEN_CHARS:
            raise SignatureError(self.name, "malformed_signature", f"the {PARAM} is too long")
        if not all(map(is_canonical_base64url, token.split("."))):  # itsdangerous ignores unused low bits
            raise SignatureError(self.name, "malformed_signature", f"the {PARAM} is not canonical base64url")
        path = _hook_path(request.url)
        for secret in secrets:
            try:
                identity = URLSafeSerializer(secret.value, salt=SALT).loads(token)
            except BadSignature:
                continue
            if identity == list(path):
                return Verification(scheme="url-token", key_id=secret.key_id)
            raise SignatureError(self.name, "no_match", "the token was issued for another connector")
        raise SignatureError(self.name, "no_match", "no active secret signed this token")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event, id and type where the options say."""
        return generic_events(request, self.options)

    def sample(self, now: float) -> TestRequest:
        """A small sample event (the token goes in the URL, see `issue_token`)."""
        return generic_sample(self.options, now)

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Nothing to add to the request: the credential is the URL (`connector-hub url-token`)."""
        return request


def _hook_path(url: str) -> tuple[str, str]:
    """(tenant, connector) of `/hooks/<tenant>/<connector>`."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 3 else ("", "")
