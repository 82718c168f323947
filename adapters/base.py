"""The webhook adapter protocol: verify, handshake, normalize. Values in, values out, no I/O.

The hub reads the request, hands an `InboundRequest` and the connector's secrets to the adapter,
and builds envelopes, claims dedupe keys and publishes from what the adapter returns. An adapter
never imports `hub`; a new provider is one module in `adapters/webhooks/` plus one line in
`adapters/registry.py`.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import BaseModel, ConfigDict

from adapters.errors import PayloadError, SignatureError
from adapters.lifecycle import ACTIVE, FIRST_OPTIONS_VERSION, FIRST_VERSION, Lifecycle, TypeVersion


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """One of a connector's secrets; `key_id` names it (for `hubkeyid`), `value` never prints."""

    key_id: str
    value: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Verification:
    """What verification proved: the scheme, which secret matched, the signed timestamp if any."""

    scheme: str
    key_id: str | None
    signed_at: float | None = None
    signature: bytes | None = None
    """The signature that matched, when it is computed over this request's content (never a static
    credential). Where no timestamp is signed, the hub remembers it so a captured request replayed
    under a new delivery id is not accepted again."""


@dataclass(frozen=True, slots=True)
class NormalizedEvent:
    """One provider event, ready for the hub to wrap in an envelope.

    `data` is a JSON-serializable value, or an `orjson.Fragment` of bytes already validated as
    JSON (the hub embeds them without re-serializing).
    """

    id: str
    type: str
    data: Any
    subject: str | None = None
    time: datetime | None = None
    datacontenttype: str = "application/json"


@dataclass(frozen=True, slots=True)
class HandshakeReply:
    """The answer a provider's handshake requires; the hub sends it and publishes nothing."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    """A provider's signing facts as data, for docs and `connector-hub providers`."""

    signature_header: str
    algorithm: str
    signed_content: str
    encoding: str
    timestamp: str | None
    dedupe_key: str
    handshake: str | None = None
    default_replay_window_s: float | None = None
    delivery_timeout_s: float = 10.0
    """How long the provider waits for our answer; the publish deadline stays well inside it."""
    replay_protection: str | None = None
    """What stops a captured request being accepted again, when it is not the usual rule derived from
    `timestamp` and `dedupe_key_signed` (shown in `docs/providers.md`)."""
    dedupe_key_signed: bool = False
    """Whether the dedupe key is covered by the signature (else a captured request replayed with a
    new id would verify, where no signed timestamp bounds it)."""
    accepted_status: int = 202
    """The status the hub answers once a delivery's events are published: the one the provider counts
    as delivered (some retry on any other code, 2xx included)."""
    duplicate_status: int = 200
    """The status of an answer that published nothing new (a redelivery or a refused replay)."""
    secret_headers: tuple[str, ...] = ()
    """Headers that carry a credential itself (a shared token, not a MAC): never kept with a refused
    request (docs/security.md)."""

    def __post_init__(self) -> None:
        for status in (self.accepted_status, self.duplicate_status):
            if not 200 <= status <= 299:
                raise ValueError(f"a success status must be 2xx, not {status}")


@dataclass(frozen=True, slots=True)
class TestRequest:
    """Headers and body of a request signed exactly as the provider would send it."""

    __test__: ClassVar[bool] = False  # not a pytest test class despite the name

    headers: dict[str, str]
    body: bytes


class InboundRequest:
    """The raw request as received: the only input an adapter gets."""

    __slots__ = ("_json", "body", "headers", "keys", "method", "query", "received_at", "url")

    def __init__(
        self,
        *,
        method: str,
        url: str,
        headers: CIMultiDictProxy[str] | Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        received_at: float,
        query: Mapping[str, str] | None = None,
        keys: Mapping[str, bytes] | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers: CIMultiDictProxy[str] = (
            headers if isinstance(headers, CIMultiDictProxy) else CIMultiDictProxy(CIMultiDict(headers))
        )
        self.body = body
        self.received_at = received_at
        self.query: Mapping[str, str] = query or {}
        self.keys: Mapping[str, bytes] = keys or {}
        """Key material the hub fetched for this request (URL -> bytes), as `key_urls` asked."""
        self._json: Any = _UNPARSED

    def header(self, name: str) -> str | None:
        """The first value of an informational header, or None; non-UTF-8 bytes are a PayloadError."""
        value = self.headers.get(name)
        if value is not None and not _is_utf8(value):
            raise PayloadError("invalid_header", f"header {name} is not valid UTF-8")
        return value

    def signed_header(self, name: str, provider: str) -> str:
        """A header that verification depends on: present exactly once, or a SignatureError."""
        values = self.headers.getall(name, [])
        if not values:
            raise SignatureError(provider, "missing_header", f"header {name} is missing")
        if len(values) > 1:
            raise SignatureError(provider, "duplicate_header", f"header {name} appears {len(values)} times")
        if not _is_utf8(values[0]):
            raise SignatureError(provider, "malformed_signature", f"header {name} is not valid UTF-8")
        return values[0]

    def json(self) -> Any:
        """The body parsed as JSON (once); hostile input is a PayloadError, never a crash."""
        if self._json is _UNPARSED:
            try:
                self._json = orjson.loads(self.body)
            except orjson.JSONDecodeError as exc:
                raise PayloadError("invalid_json", str(exc)) from None
        return self._json

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (the common case), or a PayloadError."""
        value = self.json()
        if not isinstance(value, dict):
            raise PayloadError("invalid_json", "the body is not a JSON object")
        return value


_UNPARSED: Any = object()


def _is_utf8(value: str) -> bool:
    """False for header text that aiohttp decoded from invalid UTF-8 (it keeps such bytes as surrogates)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class NoOptions(BaseModel):
    """Options model of a provider that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=BaseModel)


class WebhookAdapter(ABC, Generic[OptionsT]):
    """A provider's verifier, handshake and normalizer, configured for one connector."""

    name: ClassVar[str]
    scheme: ClassVar[SchemeInfo]
    options_model: ClassVar[type[BaseModel]] = NoOptions
    type_version: ClassVar[TypeVersion] = FIRST_VERSION
    """Semver (adapters/lifecycle.py): a minor only adds options; a new major may change a spec's meaning."""
    options_version: ClassVar[int] = FIRST_OPTIONS_VERSION
    """The version of `options_model`'s schema, raised with every change to it."""
    lifecycle: ClassVar[Lifecycle] = ACTIVE

    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @classmethod
    def configure(cls, options: Mapping[str, Any] | None = None) -> Self:
        """Validate a connector's `spec.webhook.options` and build the adapter (pydantic errors propagate)."""
        return cls(cls.options_model.model_validate(dict(options or {})))  # type: ignore[arg-type]

    @property
    def replay_window_s(self) -> float | None:
        """The provider's own window (stricter than the hub's default, or longer where the provider keeps
        its original timestamp on retries for longer), else None."""
        return self.scheme.default_replay_window_s

    def check_secret(self, secret: SigningSecret) -> None:
        """Raise ValueError (without the value) if a secret's format cannot work for this provider."""
        if not secret.value:
            raise ValueError(f"secret {secret.key_id} is empty")

    @abstractmethod
    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Prove the request was signed by one of `secrets`, or raise SignatureError."""

    def key_urls(self, request: InboundRequest) -> list[str]:
        """URLs of public key material `verify` needs for this request (an SNS signing certificate, a
        JWKS), which the hub fetches, caches and hands over in `request.keys`; the adapter checks
        every URL against the hosts it trusts before asking. Most providers need none."""
        return []

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """The reply to a verified handshake request, or None for an ordinary event.

        `secrets` are the connector's own, for providers whose answer is signed (Zoom, X CRC). In shadow
        mode the hub also asks about a request that failed verification, only to refuse it if it is a
        handshake (or a confirmation): the reply is never sent for an unverified request.
        """
        return None

    def confirmation_url(self, request: InboundRequest) -> str | None:
        """A URL the hub must visit (GET) once this verified request is published, to complete a
        subscription the provider asks to confirm (SNS, opt-in per connector); None for nothing.
        The adapter checks the URL against the hosts it trusts before returning it."""
        return None

    def accepted_reply(self, request: InboundRequest) -> HandshakeReply | None:
        """What to answer once the request's events are durably published, when the provider needs
        a specific answer (Discord: a deferred interaction response); None: the hub's 202 JSON."""
        return None

    @abstractmethod
    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """The events a verified request carries (several for batching providers)."""

    @abstractmethod
    def sample(self, now: float) -> TestRequest:
        """A realistic, unsigned sample request of this provider (for `send-test`)."""

    @abstractmethod
    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """`request` with the headers the provider adds when it signs it at time `now`."""


def matching_key(
    provider: str,
    secrets: Sequence[SigningSecret],
    candidates: Sequence[bytes],
    expected: Any,
) -> str:
    """The key id of the first secret whose expected signature equals one of `candidates`.

    `expected(secret) -> bytes` computes the signature that secret would give. Every comparison
    is constant-time, and every secret is tried against every candidate (rotation on both sides).
    """
    for secret in secrets:
        want = expected(secret)
        for candidate in candidates:
            if hmac.compare_digest(want, candidate):
                return secret.key_id
    raise SignatureError(provider, "no_match", "no active secret produced a matching signature")
