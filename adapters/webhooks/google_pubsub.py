"""Google Cloud Pub/Sub push subscriptions with authentication: `Authorization: Bearer <JWT>`, an
OpenID Connect ID token Google signs with RS256, checked with the JWKS at `jwksUrl` (default Google's
`https://www.googleapis.com/oauth2/v3/certs`), which the hub fetches and caches. A `jwksUrl` off
Google's `googleapis.com` needs the operator's allowance (adapters/keyhosts.py). Checked: `kid` in the
JWKS, the signature, `iss` (`https://accounts.google.com` or `accounts.google.com`), `aud` = the
`audience` option, `exp` not past and `iat` not ahead (60 s leeway, at the request's arrival),
`email_verified`, and `email` one of the secrets. The body is not signed.

Secrets: there is no shared secret. Each connector secret is the email of a service account allowed to
push (the subscription's `oidcToken.serviceAccountEmail`); `key_id` names the one that matched. Not
optional: anyone can have Google sign an ID token for any audience with an account of their own.

Pub/Sub reuses a token for up to an hour, so `verify` returns no signed timestamp (the hub's replay
window would refuse reused tokens) and no signature (one token covers many messages); `exp` bounds a
token and `message.messageId` catches duplicates.

Data: `subscription`, `messageId`, `publishTime`, `attributes`, `orderingKey` and `deliveryAttempt` if
present, and `data`, the base64 `message.data` decoded: JSON when it parses (`dataEncoding` "json"),
else UTF-8 text ("text"), else the base64 as sent ("base64"); null ("none") without data. Unwrapped
(payload-only) pushes are not supported.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.base import (
    InboundRequest,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import PayloadError, ReplayWindowError, SignatureError
from adapters.fields import iso_time
from adapters.keyhosts import check_key_host
from adapters.signing import is_canonical_base64url, with_headers

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
_GOOGLE_HOST = re.compile(r"(?:[a-z0-9-]+\.)*googleapis\.com")
ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
LEEWAY_S = 60.0
TOKEN_LIFETIME_S = 3600
SAMPLE_SERVICE_ACCOUNT = "pubsub-push@example-project.iam.gserviceaccount.com"
_BEARER = re.compile(r"[Bb]earer ([A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{1,2048})")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,63}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")


class GooglePubSubOptions(BaseModel):
    """Options of the Pub/Sub push adapter (`spec.webhook.options`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    audience: str = Field(
        min_length=1,
        max_length=2048,
        description="The `aud` the push subscription's OIDC token carries: its configured audience, or the push "
        "endpoint URL when none is set. Required.",
    )
    jwksUrl: str = Field(
        GOOGLE_JWKS_URL,
        max_length=2048,
        description="Where Google's signing keys (a JWKS) are fetched: https on googleapis.com, or a host the "
        "operator allows (HUB_KEY_FETCH_ALLOWED_HOSTS; plain http only to such a loopback host, for tests).",
    )

    @field_validator("jwksUrl")
    @classmethod
    def _fetchable(cls, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("https", "http") or not host or "@" in parts.netloc or parts.fragment:
            raise ValueError("must be an https URL without credentials or fragment")
        own = _GOOGLE_HOST.fullmatch(host) is not None
        check_key_host("jwksUrl", host, scheme=parts.scheme, own=own, provider_hosts="googleapis.com")
        return url


class GooglePubSubAdapter(WebhookAdapter[GooglePubSubOptions]):
    """Pub/Sub push deliveries (wrapped) authenticated with a Google-signed OIDC token."""

    name: ClassVar[str] = "google-pubsub"
    options_model: ClassVar[type[BaseModel]] = GooglePubSubOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header="Authorization: Bearer <OIDC ID token>",
        algorithm="RS256 JWT signed by Google, keys from the JWKS at jwksUrl; iss accounts.google.com, aud = the "
        "audience option, email_verified email = one of the secrets (service-account emails)",
        signed_content="the token's header and claims only; the body is not signed",
        encoding="JWT (base64url header.claims.signature)",
        timestamp="JWT exp/iat, checked by the adapter with 60 s leeway (tokens are reused for up to an hour)",
        dedupe_key="message.messageId in the body",
        delivery_timeout_s=10.0,
        replay_protection="the token's expiry (tokens are reused for up to an hour, the body is not signed), "
        "then the dedupe key (not signed)",
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """Each secret is the email of a service account allowed to push."""
        if not _EMAIL.fullmatch(secret.value.decode("ascii", errors="replace")):
            raise ValueError(f"secret {secret.key_id}: a google-pubsub secret is a service-account email")

    def key_urls(self, request: InboundRequest) -> list[str]:
        """The configured JWKS, for a request that carries a token at all."""
        return [self.options.jwksUrl] if "Authorization" in request.headers else []

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the token's signature and claims, then its email against the secrets."""
        match = _BEARER.fullmatch(request.signed_header("Authorization", self.name))
        if match is None:
            raise SignatureError(self.name, "malformed_signature", "Authorization is not `Bearer <JWT>`")
        token = match[1]
        if not all(map(is_canonical_base64url, token.split("."))):
            raise SignatureError(self.name, "malformed_signature", "the token is not canonical base64url")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise SignatureError(self.name, "malformed_signature", "the token header is not JSON") from None
        if header.get("alg") != "RS256" or not isinstance(kid := header.get("kid"), str):
            raise SignatureError(self.name, "unsupported_scheme", "the token is not RS256 with a kid")
        jwks = request.keys.get(self.options.jwksUrl)
        if jwks is None:
            raise SignatureError(self.name, "key_unavailable", "the JWKS was not fetched")
        key = _signing_keys(jwks, self.name).get(kid)
        if key is None:
            raise SignatureError(self.name, "unknown_key", "the token's kid is not in the JWKS")
        claims = _decode(token, key, self.name)
        self._check_claims(claims, request.received_at)
        if claims.get("email_verified") is not True or not isinstance(email := claims.get("email"), str):
            raise SignatureError(self.name, "untrusted_sender", "the token has no verified email")
        for secret in secrets:
            if hmac.compare_digest(secret.value.lower(), email.lower().encode()):
                return Verification(scheme="oidc-rs256", key_id=secret.key_id, signed_at=None)
        raise SignatureError(self.name, "untrusted_sender", "the token's email is not one of the connector's")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = messageId, `google-pubsub.<eventType attribute|message>`, subject = subscription."""
        body = request.json_object()
        message, subscription = body.get("message"), body.get("subscription")
        if not isinstance(message, dict):
            raise PayloadError("invalid_event", "the body has no message object (wrapped push)")
        message_id = message.get("messageId", message.get("message_id"))
        if not isinstance(message_id, str) or not message_id:
            raise PayloadError("invalid_event", "the message has no string messageId")
        attributes = message.get("attributes") or {}
        if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
            raise PayloadError("invalid_event", "message.attributes is not an object of strings")
        published = message.get("publishTime", message.get("publish_time"))
        encoding, decoded = _decode_data(message.get("data"))
        data: dict[str, Any] = {"subscription": subscription, "messageId": message_id, "publishTime": published}
        data |= {"attributes": attributes, "data": decoded, "dataEncoding": encoding}
        data |= {key: message[key] for key in ("orderingKey",) if key in message}
        data |= {key: body[key] for key in ("deliveryAttempt",) if key in body}
        event_type = attributes.get("eventType") or "message"
        return [
            NormalizedEvent(
                id=message_id,
                type=f"{self.name}.{event_type}",
                data=data,
                subject=subscription if isinstance(subscription, str) else None,
                time=iso_time(published, pattern=_RFC3339),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A Cloud Storage `OBJECT_FINALIZE` notification pushed to `hub-push`."""
        published = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        message_id, bucket = str(secrets.randbelow(10**16)), "example-uploads"
        payload = {"kind": "storage#object", "bucket": bucket, "name": "reports/2024-05.csv", "size": "48213"}
        attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": bucket, "objectId": "reports/2024-05.csv"}
        attributes |= {"payloadFormat": "JSON_API_V1", "eventTime": published}
        message = {"attributes": attributes, "data": base64.b64encode(orjson.dumps(payload)).decode()}
        message |= {"messageId": message_id, "message_id": message_id, "publishTime": published}
        message |= {"publish_time": published}
        body = {"message": message, "subscription": "projects/example-project/subscriptions/hub-push"}
        headers = {"Content-Type": "application/json", "User-Agent": "APIs-Google; (+https://developers.google.com)"}
        return TestRequest(headers=headers, body=orjson.dumps(body))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `Authorization: Bearer <JWT>` as Pub/Sub would, signed with a test RSA key.

        `secret.value` is that key's PEM; `kid` = `key_id_of` its public key; `email` =
        SAMPLE_SERVICE_ACCOUNT; `aud` = the audience option; `iat` = `now`, valid for an hour. Only
        Google holds the real key, so a connector's own secret (an email) cannot sign: a ValueError.
        """
        try:
            key = serialization.load_pem_private_key(secret.value, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError(f"secret {secret.key_id}: signing needs a test RSA private key (PEM); only Google signs")
        issued, subject = int(now), "113774264463038321964"
        claims: dict[str, Any] = {"aud": self.options.audience, "azp": subject, "email": SAMPLE_SERVICE_ACCOUNT}
        claims |= {"sub": subject, "email_verified": True, "exp": issued + TOKEN_LIFETIME_S, "iat": issued}
        claims |= {"iss": "https://accounts.google.com"}
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": key_id_of(key.public_key())})
        return with_headers(request, {"Authorization": f"Bearer {token}"})

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        if claims.get("iss") not in ISSUERS:
            raise SignatureError(self.name, "wrong_issuer", "the token was not issued by accounts.google.com")
        audience = claims.get("aud")
        if not isinstance(audience, str) or not hmac.compare_digest(audience.encode(), self.options.audience.encode()):
            raise SignatureError(self.name, "wrong_audience", "the token's aud is not the configured audience")
        expires, issued = claims.get("exp"), claims.get("iat")
        if type(expires) is not int or type(issued) is not int:
            raise SignatureError(self.name, "malformed_signature", "the token's exp and iat are not integers")
        if now > expires + LEEWAY_S:
            raise ReplayWindowError(now - issued, expires - issued + LEEWAY_S)
        if issued > now + LEEWAY_S:
            raise ReplayWindowError(now - issued, LEEWAY_S)


def key_id_of(key: RSAPublicKey) -> str:
    """A stable `kid` for a test key: SHA-1 of its DER SubjectPublicKeyInfo, hex (40 digits, like Google's)."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


@lru_cache(maxsize=8)
def _parse_jwks(jwks: bytes) -> dict[str, RSAPublicKey]:
    """RS256 signing keys by kid (other key types and uses are skipped)."""
    keys = {}
    for jwk in jwt.PyJWKSet.from_json(jwks.decode()).keys:
        usable = jwk.key_type == "RSA" and jwk.algorithm_name == "RS256" and jwk.public_key_use in (None, "sig")
        if usable and jwk.key_id and isinstance(jwk.key, RSAPublicKey):
            keys[jwk.key_id] = jwk.key
    return keys


def _signing_keys(jwks: bytes, provider: str) -> dict[str, RSAPublicKey]:
    try:
        return _parse_jwks(jwks)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
        raise SignatureError(provider, "malformed_key", "the JWKS is not a JSON Web Key Set") from None


def _decode(token: str, key: RSAPublicKey, provider: str) -> dict[str, Any]:
    """The claims, once the RS256 signature verifies (times and audience are checked by the caller)."""
    unchecked = ("exp", "nbf", "iat", "aud", "iss", "sub", "jti")
    off = cast("jwt.types.Options", {f"verify_{name}": False for name in unchecked})
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], options=off)
    except jwt.InvalidSignatureError:
        raise SignatureError(provider, "no_match", "the token's signature does not verify") from None
    except jwt.InvalidTokenError:
        raise SignatureError(provider, "malformed_signature", "the token cannot be decoded") from None
    return claims


def _decode_data(value: Any) -> tuple[str, Any]:
    """(`dataEncoding`, `data`) of a message's base64 `data`."""
    if value is None:
        return "none", None
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None:
        raise PayloadError("invalid_event", "message.data is not base64")
    try:
        return "json", orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return "text", raw.decode()
    except UnicodeDecodeError:
        return "base64", value
