"""One conformance suite for every registered webhook provider (what Redpanda's `StreamTests` is to
its connectors): every name in `adapters.registry.WEBHOOK_PROVIDERS` runs the same rules.

Requests go through an adapter exactly as the hub takes them (`hub/ingress/handler.py`): `key_urls`,
the provider's key material served at those URLs, `verify`, then the signed time against the replay
window (`check_replay_window`, the adapter's own window or the hub's default). A provider without an
entry in OVERRIDES runs as a shared-secret scheme with no options: adding such a provider is its module,
its vectors and its registry line, nothing here. An entry gives what a provider's secret or key format
needs (test key pairs where only the provider can sign, its options, its key material, a mode).
A rule that cannot hold for a scheme is excluded by name in that entry, with the reason: nothing is
skipped silently.

The rules, for each provider (and each variant of a provider with modes):
1. the adapter's own sample, signed by the adapter, verifies (naming the secret that matched and the
   signed time) and normalizes into events of the provider;
2. every listed secret is tried, and the one that matched is named (rotation);
3. every flipped bit of the signature, of every other header the signature depends on, and of the
   signed body is refused: exhaustively over the signed sample, and as a Hypothesis property over
   arbitrary bodies, keys and times (derandomized, as tests/conftest.py sets up);
4. a missing signature is refused, and so is a repeated header (the same header twice, with the same
   value and with another one): several signatures in ONE header are some schemes' rotation, a
   repeated header is never accepted;
5. where the scheme signs a time, a request signed outside the replay window is refused and one just
   inside it accepted; where it signs none, verification reports none;
6. a redelivery (the same delivery, signed again later) keeps its dedupe keys, the events' ids;
7. no refusal echoes a secret, a signature, a token or another header value sent.

Besides, where a scheme's facts leave the signature bytes as its replay guard (docs/providers.md says
so), verification returns them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import parse_qsl, urlencode

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification, WebhookAdapter
from adapters.errors import PayloadError, ReplayWindowError, RequestRejected, SignatureError
from adapters.registry import WEBHOOK_PROVIDERS
from adapters.webhooks.google_pubsub import SAMPLE_SERVICE_ACCOUNT
from adapters.webhooks.url_token import issue_token
from hub.ingress.handler import check_replay_window
from schemas.connector import DEFAULT_REPLAY_WINDOW
from tests.adapters.harness import NOW, flip, flip_byte, vector_document

AnyAdapter = WebhookAdapter[Any]
Span = tuple[int, int]


# --- a delivery as the hub receives it, and where its signature travels ---------------------------


@dataclass(frozen=True)
class Delivery:
    """One request as received: its headers (a multidict: order and repeats kept), body, URL, query,
    the key material fetched for it, and when it arrived."""

    headers: tuple[tuple[str, str], ...]
    body: bytes
    url: str
    at: float
    query: Mapping[str, str] = field(default_factory=dict)
    keys: Mapping[str, bytes] = field(default_factory=dict)
    method: str = "POST"

    def request(self) -> InboundRequest:
        return InboundRequest(
            method=self.method,
            url=self.url,
            headers=list(self.headers),
            body=self.body,
            received_at=self.at,
            query=self.query,
            keys=self.keys,
        )

    def header(self, name: str) -> str:
        value = CIMultiDict(self.headers).get(name)
        assert value is not None, f"the signed request has no {name} header"
        return value

    def header_names(self) -> list[str]:
        return list(dict.fromkeys(name.lower() for name, _ in self.headers))

    def with_header(self, name: str, value: str) -> Delivery:
        """This delivery with `name` (any case) set to `value`, in place."""
        return replace(self, headers=tuple((n, value if n.lower() == name.lower() else v) for n, v in self.headers))

    def without_header(self, name: str) -> Delivery:
        return replace(self, headers=tuple((n, v) for n, v in self.headers if n.lower() != name.lower()))

    def plus_header(self, name: str, value: str) -> Delivery:
        return replace(self, headers=(*self.headers, (name, value)))


class Carrier(Protocol):
    """Where a scheme's signature (or credential) travels in a request."""

    @property
    def label(self) -> str: ...

    @property
    def flip_from(self) -> int:
        """Characters at the start of the value that are not the signature (a case-insensitive scheme name)."""
        ...

    def value(self, delivery: Delivery) -> str: ...

    def replace(self, delivery: Delivery, value: str) -> Delivery: ...

    def remove(self, delivery: Delivery) -> Delivery: ...


@dataclass(frozen=True)
class Header:
    """A signature header."""

    name: str
    flip_from: int = 0

    @property
    def label(self) -> str:
        return self.name

    def value(self, delivery: Delivery) -> str:
        return delivery.header(self.name)

    def replace(self, delivery: Delivery, value: str) -> Delivery:
        return delivery.with_header(self.name, value)

    def remove(self, delivery: Delivery) -> Delivery:
        return delivery.without_header(self.name)


@dataclass(frozen=True)
class BodyField:
    """A signature string inside the JSON body, at `path` (SNS's `Signature`, Mailgun's `signature.signature`)."""

    path: tuple[str, ...]
    flip_from: int = 0

    @property
    def label(self) -> str:
        return ".".join(self.path)

    def value(self, delivery: Delivery) -> str:
        value: Any = orjson.loads(delivery.body)
        for key in self.path:
            value = value[key]
        assert isinstance(value, str)
        return value

    def replace(self, delivery: Delivery, value: str) -> Delivery:
        old = orjson.dumps(self.value(delivery))
        assert delivery.body.count(old) == 1, f"{self.label} is not written once in the body"
        return replace(delivery, body=delivery.body.replace(old, orjson.dumps(value)))

    def remove(self, delivery: Delivery) -> Delivery:
        body = orjson.loads(delivery.body)
        container = body
        for key in self.path[:-1]:
            container = container[key]
        del container[self.path[-1]]
        return replace(delivery, body=orjson.dumps(body))


@dataclass(frozen=True)
class ClientState:
    """Microsoft Graph's `clientState`, carried by every notification of the batch (here: the first one's)."""

    label: ClassVar[str] = "value[0].clientState"
    flip_from: ClassVar[int] = 0

    def value(self, delivery: Delivery) -> str:
        state = orjson.loads(delivery.body)["value"][0]["clientState"]
        assert isinstance(state, str)
        return state

    def replace(self, delivery: Delivery, value: str) -> Delivery:
        old = b'"clientState":' + orjson.dumps(self.value(delivery))
        return replace(delivery, body=delivery.body.replace(old, b'"clientState":' + orjson.dumps(value), 1))

    def remove(self, delivery: Delivery) -> Delivery:
        body = orjson.loads(delivery.body)
        del body["value"][0]["clientState"]
        return replace(delivery, body=orjson.dumps(body))


@dataclass(frozen=True)
class QueryParameter:
    """A credential in the URL's query string (the url-token scheme)."""

    name: str
    flip_from: int = 0

    @property
    def label(self) -> str:
        return f"?{self.name}"

    def value(self, delivery: Delivery) -> str:
        return delivery.query[self.name]

    def replace(self, delivery: Delivery, value: str) -> Delivery:
        return replace(delivery, query={**delivery.query, self.name: value})

    def remove(self, delivery: Delivery) -> Delivery:
        return replace(delivery, query={k: v for k, v in delivery.query.items() if k != self.name})


# --- what each provider needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    """What signs (a test key, where only the provider holds the real one) and the connector's secret
    that verifies it; for a shared-secret scheme, one secret in both roles."""

    signer: SigningSecret
    secret: SigningSecret

    @classmethod
    def shared(cls, value: bytes) -> Keys:
        secret = SigningSecret("conformance", value)
        return cls(secret, secret)


SHARED_KEYS = Keys.shared(b"c0nf-7d3a91f2e4b8")
OTHER_SECRET = SigningSecret("other", b"0th3r-5be20c6a71d9")
ANY_KEY = st.binary(min_size=1, max_size=64)


def _any_bytes(at: float) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=1, max_size=300)


@dataclass(frozen=True)
class Case:
    """One provider (or one mode of it) as the suite runs it; the defaults are a shared-secret scheme."""

    provider: str
    variant: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    keys: Keys = SHARED_KEYS
    other: SigningSecret = OTHER_SECRET
    """A valid secret of the scheme that signed nothing here (for rotation and the wrong-secret check)."""
    wrong_secret: str = "no_match"
    """The reason a request gets when none of the listed secrets signed it."""
    key_values: st.SearchStrategy[bytes] | None = ANY_KEY
    """The shared secrets the property draws (kept when `check_secret` accepts them); None: `keys` only."""
    carrier: Carrier | None = None
    """Where the signature travels; None: the header `SchemeInfo.signature_header` names first."""
    key_material: bytes | None = None
    """What the hub would fetch at the URLs `key_urls` names for the sample (a certificate, a JWKS)."""
    unsigned: Callable[[bytes], list[Span]] | None = None
    """Byte spans of a delivered body that the scheme documents as not signed (and why, in a comment)."""
    same_content: Callable[[bytes, bytes], bool] | None = None
    """Whether two bodies are one signed content (a scheme that signs decoded values, not bytes)."""
    refusals: tuple[type[RequestRejected], ...] = (SignatureError,)
    """What refusing a tampered request may raise (a body that cannot be read is a PayloadError)."""
    body_reason: str | None = "no_match"
    """The reason a flipped bit of the signed body gets; None: it depends on what the flip breaks first."""
    bodies: Callable[[float], st.SearchStrategy[bytes]] | None = _any_bytes
    """The unsigned bodies the property signs at a time; None: the adapter's own sample."""
    times: st.SearchStrategy[float] | None = None
    """When the property signs; None: any second to 10**11 where a time is signed, else NOW."""
    signed_at: Callable[[float], float | None] | None = None
    """The time verification reports for a request signed at a time; None: the whole second, or None."""
    signs_time: bool | None = None
    """Whether a time is signed; None: whether `SchemeInfo.timestamp` names one."""
    window: tuple[float, float] | None = None
    """How far in the past and in the future a signed time is accepted; None: the hub's window both ways."""
    query: Callable[[SigningSecret, str], dict[str, str]] | None = None
    """The query string a signed delivery carries (a credential in the URL)."""
    resign: bool = True
    """Whether a redelivery is the delivery signed again (else: the same signed request arriving again)."""
    examples: int = 100
    excluded: Mapping[str, str] = field(default_factory=dict)
    """Rules that cannot hold for this scheme (`body`, `duplicate`), each with its reason."""

    @property
    def id(self) -> str:
        return f"{self.provider}[{self.variant}]" if self.variant else self.provider

    @property
    def url(self) -> str:
        return f"https://hooks.example.com/hooks/acme/{self.provider}"

    def adapter(self) -> AnyAdapter:
        return WEBHOOK_PROVIDERS[self.provider].configure(self.options)

    def carrier_of(self, adapter: AnyAdapter) -> Carrier:
        return self.carrier or Header(adapter.scheme.signature_header.split()[0].rstrip(":"))

    def timed(self, adapter: AnyAdapter) -> bool:
        return adapter.scheme.timestamp is not None if self.signs_time is None else self.signs_time

    def window_of(self, adapter: AnyAdapter) -> tuple[float, float]:
        hub = adapter.replay_window_s or DEFAULT_REPLAY_WINDOW.total_seconds()
        return self.window or (hub, hub)

    def expected_signed_at(self, adapter: AnyAdapter, at: float) -> float | None:
        if self.signed_at is not None:
            return self.signed_at(at)
        return float(int(at)) if self.timed(adapter) else None

    def time_strategy(self, adapter: AnyAdapter) -> st.SearchStrategy[float]:
        if self.times is not None:
            return self.times
        return st.integers(0, 10**11).map(float) if self.timed(adapter) else st.just(float(NOW))

    def key_strategy(self, adapter: AnyAdapter) -> st.SearchStrategy[Keys]:
        if self.key_values is None:
            return st.just(self.keys)
        return self.key_values.filter(lambda value: _accepted_secret(adapter, value)).map(Keys.shared)


def _accepted_secret(adapter: AnyAdapter, value: bytes) -> bool:
    try:
        adapter.check_secret(SigningSecret("drawn", value))
    except ValueError:
        return False
    return True


# Test key pairs for the providers that sign with a private key only they hold.


def _discord_keys(label: str) -> Keys:
    """An Ed25519 pair: the public key as the connector's secret, NaCl's 128-hex private key to sign."""
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
    public = private.public_key().public_bytes_raw()
    return Keys(
        SigningSecret(label, (private.private_bytes_raw() + public).hex().encode()),
        SigningSecret(label, public.hex().encode()),
    )


def _sendgrid_keys(label: str) -> Keys:
    """A P-256 pair: the PEM private key to sign, the base64 DER public key as SendGrid shows it."""
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest()) % 2**255 + 1  # below the curve's order
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Keys(SigningSecret(label, pem), SigningSecret(label, base64.b64encode(spki)))


SNS = vector_document("aws-sns")
PUBSUB = vector_document("google-pubsub")
SAMPLE_TOPIC = b"arn:aws:sns:us-east-1:123456789012:orders"
"""The topic of the SNS adapter's sample (a connector's SNS secrets are the topics it accepts)."""


def _sns_body(message: str, version: str) -> bytes:
    """An unsigned SNS notification as AWS lays it out, with `message` and SignatureVersion `version`."""
    fields = {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": SAMPLE_TOPIC.decode(),
        "Subject": "Order A-1001 paid",
        "Message": message,
        "Timestamp": "2024-05-21T14:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    }
    lines = (f"  {orjson.dumps(name).decode()} : {orjson.dumps(value).decode()}" for name, value in fields.items())
    return ("{\n" + ",\n".join(lines) + "\n}").encode()


def _item_span(body: bytes, key: bytes) -> list[Span]:
    """The span of the JSON member `"key": value` that ends the object it is in (up to the closing brace)."""
    start = body.index(b'"' + key + b'"')
    end = body.rindex(b"}")
    if body[end - 1 : end] == b"\n":
        end -= 1
    return [(start, end)]


def _sns_unsigned(body: bytes) -> list[Span]:
    """`UnsubscribeURL` is not signed (AWS signs Message, MessageId, Subject, Timestamp, TopicArn, Type)."""
    start = body.index(b'"UnsubscribeURL"')
    return [(start, body.index(b"\n", start))]


def _mailgun_unsigned(body: bytes) -> list[Span]:
    """`event-data` is not signed: Mailgun signs the timestamp and the token (the dedupe key) only."""
    return _item_span(body, b"event-data")


def _form(body: bytes) -> set[tuple[str, str]] | None:
    try:
        return set(parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None


def _same_form(signed: bytes, received: bytes) -> bool:
    """Twilio signs the decoded parameters (each name's distinct values), so a flip that decodes to the
    same parameters, `%2b` for `%2B`, is the same signed content."""
    return _form(received) is not None and _form(received) == _form(signed)


def _standard_keys() -> st.SearchStrategy[bytes]:
    """Standard Webhooks secrets: `whsec_` and base64 of 24 to 64 bytes, or raw key bytes."""
    whsec = st.binary(min_size=24, max_size=64).map(lambda key: b"whsec_" + base64.b64encode(key))
    return st.one_of(whsec, st.binary(min_size=1, max_size=64))


SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
_HEX = st.binary(min_size=1, max_size=64).map(lambda value: value.hex().encode())
_HOOKS = "https://hooks.example.com/hooks/acme/"
STANDARD_KEYS = Keys.shared(b"whsec_" + base64.b64encode(b"c" * 32))
STANDARD_OTHER = SigningSecret("other", b"whsec_" + base64.b64encode(b"o" * 32))
_CREDENTIAL = "the credential authenticates the sender, not the body (SchemeInfo.signed_content: nothing)"
_IN_BODY = "the signature travels inside the JSON body, not in a header: a header plays no part in verifying it"

OVERRIDES: tuple[Case, ...] = (
    Case("stripe", examples=150),
    Case("paddle", examples=150),
    Case("calendly", examples=150),
    Case("lemonsqueezy", examples=150),
    Case("jira", examples=150),
    Case("intercom", examples=150),
    Case("typeform", examples=150),
    Case("shopify", examples=200),
    Case("twitch", times=st.floats(0, 4_102_444_800, allow_nan=False), signed_at=lambda at: at),
    Case(
        "hubspot",
        options={"publicUrl": _HOOKS + "hubspot"},
        times=st.integers(0, 10**14).map(lambda ms: ms / 1000),
        signed_at=lambda at: round(at * 1000) / 1000,
        examples=150,
    ),
    Case("square", options={"publicUrl": _HOOKS + "square"}, examples=150),
    Case(
        "twilio",
        options={"publicUrl": _HOOKS + "twilio"},
        bodies=lambda at: st.lists(st.tuples(st.text(max_size=12), st.text(max_size=20)), min_size=1, max_size=8).map(
            lambda params: urlencode(params).encode()
        ),
        same_content=_same_form,
        body_reason=None,
        refusals=(SignatureError, PayloadError),
        examples=150,
    ),
    Case(
        "linear",
        times=st.integers(0, 10**14).map(lambda ms: ms / 1000),
        bodies=lambda at: st.text(max_size=100).map(
            lambda note: orjson.dumps(
                {"type": "Comment", "action": "create", "data": {"body": note}, "webhookTimestamp": round(at * 1000)}
            )
        ),
        signed_at=lambda at: round(at * 1000) / 1000,
    ),
    Case("standard-webhooks", keys=STANDARD_KEYS, other=STANDARD_OTHER, key_values=_standard_keys()),
    Case("svix", keys=STANDARD_KEYS, other=STANDARD_OTHER, key_values=_standard_keys()),
    Case("clerk", keys=STANDARD_KEYS, other=STANDARD_OTHER, key_values=_standard_keys()),
    Case("resend", keys=STANDARD_KEYS, other=STANDARD_OTHER, key_values=_standard_keys()),
    Case(
        "discord",
        keys=_discord_keys("conformance"),
        other=_discord_keys("other").secret,
        key_values=None,
    ),
    Case(
        "sendgrid",
        keys=_sendgrid_keys("conformance"),
        other=_sendgrid_keys("other").secret,
        key_values=None,
    ),
    Case(
        "aws-sns",
        keys=Keys(SigningSecret("signer", SNS["referencePrivateKey"].encode()), SigningSecret("topic", SAMPLE_TOPIC)),
        other=SigningSecret("other", b"arn:aws:sns:us-east-1:123456789012:payments"),
        wrong_secret="untrusted_topic",  # AWS signed it: the topic is what the secrets accept
        body_reason=None,
        key_values=None,
        carrier=BodyField(("Signature",)),
        key_material=SNS["certificates"]["reference"].encode(),
        unsigned=_sns_unsigned,
        bodies=lambda at: st.builds(_sns_body, st.text(min_size=1, max_size=200), st.sampled_from(["1", "2"])),
        times=st.integers(1_577_836_800, 2_524_607_999).map(float),  # the reference certificate's validity
        examples=40,
        excluded={"duplicate": _IN_BODY + " (a key written twice in the body: test_aws_sns)"},
    ),
    Case(
        "google-pubsub",
        options={"audience": PUBSUB["audience"]},
        keys=Keys(
            SigningSecret("signer", PUBSUB["privateKeys"][0].encode()),
            SigningSecret("sa", SAMPLE_SERVICE_ACCOUNT.encode()),
        ),
        other=SigningSecret("other", b"other-push@example-project.iam.gserviceaccount.com"),
        wrong_secret="untrusted_sender",  # Google signed it: the service account is what the secrets accept
        key_values=None,
        carrier=Header("Authorization", flip_from=len("Bearer ")),  # the auth scheme name is case-insensitive
        key_material=orjson.dumps(PUBSUB["jwks"]),
        bodies=None,
        times=st.integers(1_600_000_000, 1_900_000_000).map(float),
        signed_at=lambda at: None,
        window=(3600 + 60, 60),  # a token is reused until it expires (an hour, 60 s leeway); iat not ahead
        examples=60,
        excluded={"body": "Pub/Sub signs the token, not the body (SchemeInfo.signed_content); messageId dedupes"},
    ),
    Case(
        "mailgun",
        carrier=BodyField(("signature", "signature")),
        body_reason=None,
        unsigned=_mailgun_unsigned,
        bodies=None,
        resign=False,  # signing mints a new token, the dedupe key: a retry resends the signed body
        examples=150,
        excluded={"duplicate": _IN_BODY},
    ),
    Case(
        "msgraph",
        keys=Keys.shared(b"cs-4e1b9d2a7f"),
        other=SigningSecret("other", b"cs-0a6c3e8b51"),
        key_values=st.text(st.characters(codec="utf-8", exclude_categories=SURROGATES), min_size=1, max_size=255).map(
            str.encode
        ),
        carrier=ClientState(),
        bodies=None,
        examples=80,
        excluded={
            "body": "Graph signs nothing; the clientState in each notification authenticates the sender",
            "duplicate": "the clientState travels in the body, not a header: a header plays no part in verifying it",
        },
    ),
    Case(
        "basic",
        keys=Keys.shared(b"acme:9f4Kq2vXw7"),
        other=SigningSecret("other", b"acme:Zr81mPq3sT"),
        key_values=_HEX.map(lambda password: b"user:" + password),
        excluded={"body": _CREDENTIAL},
    ),
    Case("token", carrier=Header("Authorization"), key_values=_HEX, excluded={"body": _CREDENTIAL}),
    Case(
        "url-token",
        carrier=QueryParameter("token"),
        query=lambda secret, provider: {"token": issue_token(secret.value, "acme", provider)},
        excluded={
            "body": "the token authenticates the URL, not the body (SchemeInfo.signed_content)",
            "duplicate": "the token travels in the query string, not a header: a header plays no part in verifying "
            "it, and the body is not authenticated, so no repetition can make a tampered body verify",
        },
    ),
    Case(
        "hmac", options={"header": "X-Signature", "prefix": "sha256="}, carrier=Header("X-Signature"), signs_time=False
    ),
    Case(
        "hmac",
        variant="timed",
        carrier=Header("X-Sig"),
        options={
            "header": "X-Sig",
            "encoding": "base64",
            "timestampHeader": "X-Ts",
            "idHeader": "X-Id",
            "signedContent": "{id}.{timestamp}.{body}",
        },
    ),
    Case(
        "hmac",
        variant="sha1",
        carrier=Header("X-Sig"),
        options={
            "header": "X-Sig",
            "algorithm": "sha1",
            "encoding": "base64",
            "prefix": "sig=",
            "timestampHeader": "X-Ts",
            "signedContent": "{timestamp}.{body}",
        },
    ),
    Case(
        "hmac",
        variant="sha512",
        carrier=Header("X-Sig"),
        options={
            "header": "X-Sig",
            "algorithm": "sha512",
            "prefix": "sig=",
            "timestampHeader": "X-Ts",
            "timestampUnit": "ms",
            "signedContent": "{timestamp}.{body}",
        },
    ),
    Case(
        "gitlab",
        key_values=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80).map(
            str.encode
        ),
        excluded={
            "body": "mode token: GitLab sends the secret token itself; it authenticates the sender, not the body"
        },
    ),
    Case(
        "gitlab",
        variant="standard-webhooks",
        options={"mode": "standard-webhooks"},
        carrier=Header("webhook-signature"),
        signs_time=True,
        key_values=st.binary(min_size=24, max_size=64).map(lambda key: b"whsec_" + base64.b64encode(key)),
        keys=STANDARD_KEYS,
        other=STANDARD_OTHER,
        examples=60,
    ),
)


def _cases() -> list[Case]:
    """Every registered provider: its entries in OVERRIDES (one per mode), else the defaults."""
    by_id = {case.id: case for case in OVERRIDES}
    assert len(by_id) == len(OVERRIDES), "two entries for one provider and mode"
    unknown = {case.provider for case in OVERRIDES} - set(WEBHOOK_PROVIDERS)
    assert not unknown, f"cases for providers that are not registered: {unknown}"
    cases = []
    for provider in WEBHOOK_PROVIDERS:
        own = [case for case in by_id.values() if case.provider == provider]
        cases.extend(own or [Case(provider)])
    return cases


CASES = _cases()
RULES = ("body", "duplicate")


def cases(*, without: str | None = None, where: Callable[[Case], bool] = lambda case: True) -> pytest.MarkDecorator:
    """A parametrize over the cases (those that do not exclude `without`, and satisfy `where`)."""
    chosen = [case for case in CASES if (without is None or without not in case.excluded) and where(case)]
    return pytest.mark.parametrize("case", chosen, ids=[case.id for case in chosen])


# --- the hub's view of a request -------------------------------------------------------------------


def deliver(case: Case, adapter: AnyAdapter, keys: Keys, request: TestRequest, at: float) -> Delivery:
    """`request` signed at `at` and arriving then, with the key material the hub would fetch for it."""
    signed = adapter.sign(request, keys.signer, at)
    delivery = Delivery(headers=tuple(signed.headers.items()), body=signed.body, url=case.url, at=at)
    if case.query is not None:
        delivery = replace(delivery, query=case.query(keys.signer, case.provider))
    if case.key_material is not None:
        delivery = replace(delivery, keys=dict.fromkeys(adapter.key_urls(delivery.request()), case.key_material))
    return delivery


def sample(case: Case, adapter: AnyAdapter, at: float = NOW, keys: Keys | None = None) -> Delivery:
    return deliver(case, adapter, keys or case.keys, adapter.sample(at), at)


def verdict(adapter: AnyAdapter, delivery: Delivery, secrets: Sequence[SigningSecret]) -> Verification:
    """What the hub decides: the key URLs asked for, verification, then the replay window."""
    request = delivery.request()
    adapter.key_urls(request)
    verification = adapter.verify(request, secrets)
    window = adapter.replay_window_s or DEFAULT_REPLAY_WINDOW.total_seconds()
    check_replay_window(verification.signed_at, request.received_at, window)
    return verification


def refusal(
    case: Case,
    adapter: AnyAdapter,
    delivery: Delivery,
    secrets: Sequence[SigningSecret],
    expected: tuple[type[RequestRejected], ...] | None = None,
    *,
    original: Delivery | None = None,
) -> RequestRejected:
    """The refusal of `delivery`, checked to be of an expected kind and to echo nothing it was sent."""
    with pytest.raises(RequestRejected) as caught:
        verdict(adapter, delivery, secrets)
    error = caught.value
    assert isinstance(error, expected or case.refusals), f"{type(error).__name__}: {error}"
    if isinstance(error, SignatureError):
        assert error.provider == adapter.name
    fixed = fixed_text(adapter, delivery)
    assert_no_echo(case, adapter, error, original or delivery, delivery, [*secrets, case.keys.signer], fixed)
    return error


UNRELATED = SigningSecret("unrelated", b"Z9#unrelated~secret*q7")


def fixed_text(adapter: AnyAdapter, delivery: Delivery) -> str:
    """The refusal's text with a secret that has nothing to do with the delivery: what does not depend on
    the secrets, so a drawn secret that happens to spell part of it (`rignatur`) echoes nothing."""
    try:
        verdict(adapter, delivery, [UNRELATED])
    except RequestRejected as refused:
        return f"{refused.reason} {refused.detail} {refused}"
    except ValueError:  # a provider whose secrets have a form (Discord's hex key): no fixed text to learn
        return ""
    return ""


def assert_no_echo(
    case: Case,
    adapter: AnyAdapter,
    error: RequestRejected,
    original: Delivery,
    delivery: Delivery,
    secrets: Sequence[SigningSecret],
    fixed: str = "",
) -> None:
    """No 8 characters in a row of a secret, of the signature or of a header the signature depends on
    appear in the refusal, nor any other header value or query value as a whole; text the refusal has
    whatever the secrets (`fixed`) is no echo."""
    message = f"{error.reason} {error.detail} {error}"
    for name in {name for name, _ in (*original.headers, *delivery.headers)}:  # naming a header echoes no value
        message = re.sub(re.escape(name), "<header>", message, flags=re.IGNORECASE)
    sensitive = [secret.value.decode(errors="replace") for secret in secrets]
    sensitive += [*delivery.query.values()]
    with contextlib.suppress(AssertionError, KeyError, TypeError, ValueError):  # removed, or no longer parses
        sensitive.append(case.carrier_of(adapter).value(delivery))
    with contextlib.suppress(AssertionError, KeyError, TypeError, ValueError):
        sensitive.append(case.carrier_of(adapter).value(original))
    for value in sensitive:
        windows = windows_of(value) - windows_of(fixed)
        assert not any(window in message for window in windows), f"the refusal echoes a value: {message}"
    for _, value in delivery.headers:
        assert len(value) < 8 or value not in message, f"the refusal echoes a header: {message}"


def windows_of(text: str) -> set[str]:
    """Every 8 characters in a row of `text`."""
    return {text[i : i + 8] for i in range(len(text) - 7)}


def signed_headers(case: Case, adapter: AnyAdapter, delivery: Delivery) -> list[str]:
    """The headers besides the signature that verification depends on: those whose absence is refused."""
    carrier = case.carrier_of(adapter)
    names = [
        name for name in delivery.header_names() if not (isinstance(carrier, Header) and name == carrier.name.lower())
    ]
    found = []
    for name in names:
        try:
            verdict(adapter, delivery.without_header(name), [case.keys.secret])
        except RequestRejected:
            found.append(name)
    return found


def assert_signed_at(verification: Verification, expected: float | None) -> None:
    if expected is None:
        assert verification.signed_at is None
    else:
        assert verification.signed_at == pytest.approx(expected, abs=1e-5)


def event_ids(adapter: AnyAdapter, delivery: Delivery) -> list[str]:
    return [event.id for event in adapter.normalize(delivery.request())]


def _body_positions(case: Case, delivery: Delivery) -> list[int]:
    unsigned = case.unsigned(delivery.body) if case.unsigned else []
    return [i for i in range(len(delivery.body)) if not any(start <= i < end for start, end in unsigned)]


def assert_tampered_refused(
    case: Case, adapter: AnyAdapter, original: Delivery, tampered: Delivery
) -> RequestRejected | None:
    """A tampered request is refused, unless the scheme signs decoded content that the tampering left
    the same (then it verifies, as the provider's own verifier does)."""
    secrets = [case.keys.secret]
    only_the_body = replace(tampered, body=original.body) == original and tampered.body != original.body
    if only_the_body and case.same_content is not None and case.same_content(original.body, tampered.body):
        verdict(adapter, tampered, secrets)
        return None
    return refusal(case, adapter, tampered, secrets, original=original)


# --- the rules -------------------------------------------------------------------------------------


def test_every_registered_provider_has_a_case_and_every_exclusion_a_rule_and_reason() -> None:
    assert {case.provider for case in CASES} == set(WEBHOOK_PROVIDERS)
    for case in CASES:
        assert set(case.excluded) <= set(RULES), case.id
        assert all(reason.strip() for reason in case.excluded.values()), case.id


@cases()
def test_the_signed_sample_verifies_and_normalizes(case: Case) -> None:
    adapter = case.adapter()
    adapter.check_secret(case.keys.secret)
    delivery = sample(case, adapter)
    verification = verdict(adapter, delivery, [case.keys.secret])
    assert verification.key_id == case.keys.secret.key_id
    assert_signed_at(verification, case.expected_signed_at(adapter, NOW))
    assert adapter.handshake(delivery.request(), [case.keys.secret]) is None
    events = adapter.normalize(delivery.request())
    prefix = getattr(adapter.options, "typePrefix", adapter.name)
    assert events
    assert all(event.id and event.type.startswith(f"{prefix}.") for event in events)


@cases()
def test_every_listed_secret_is_tried_and_the_matching_one_named(case: Case) -> None:
    adapter = case.adapter()
    adapter.check_secret(case.keys.secret)
    adapter.check_secret(case.other)
    delivery = sample(case, adapter)
    for secrets in ([case.other, case.keys.secret], [case.keys.secret, case.other]):
        assert verdict(adapter, delivery, secrets).key_id == case.keys.secret.key_id
    assert refusal(case, adapter, delivery, [case.other], (SignatureError,)).reason == case.wrong_secret


@cases()
def test_every_flipped_bit_of_the_signature_is_refused(case: Case) -> None:
    adapter = case.adapter()
    delivery = sample(case, adapter)
    carrier = case.carrier_of(adapter)
    value = carrier.value(delivery)
    assert len(value) > carrier.flip_from
    for index in range(carrier.flip_from, len(value)):
        for bit in range(7):
            assert_tampered_refused(case, adapter, delivery, carrier.replace(delivery, flip(value, index, bit)))


@cases()
def test_every_flipped_bit_of_the_other_signed_headers_is_refused(case: Case) -> None:
    adapter = case.adapter()
    delivery = sample(case, adapter)
    for name in signed_headers(case, adapter, delivery):
        value = delivery.header(name)
        for index in range(len(value)):
            for bit in range(7):
                assert_tampered_refused(case, adapter, delivery, delivery.with_header(name, flip(value, index, bit)))


@cases(without="body")
def test_every_flipped_bit_of_the_signed_body_is_refused(case: Case) -> None:
    adapter = case.adapter()
    delivery = sample(case, adapter)
    for index in _body_positions(case, delivery):
        for bit in range(8):
            tampered = replace(delivery, body=flip_byte(delivery.body, index, bit))
            error = assert_tampered_refused(case, adapter, delivery, tampered)
            assert case.body_reason is None or error is None or error.reason == case.body_reason


@cases()
def test_round_trips_and_any_flipped_bit_is_refused_for_any_body_key_and_time(case: Case) -> None:
    adapter = case.adapter()
    carrier = case.carrier_of(adapter)

    @settings(max_examples=case.examples, deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        keys = data.draw(case.key_strategy(adapter), label="keys")
        at = data.draw(case.time_strategy(adapter), label="at")
        request = (
            adapter.sample(at) if case.bodies is None else TestRequest({}, data.draw(case.bodies(at), label="body"))
        )
        delivery = deliver(case, adapter, keys, request, at)
        verification = verdict(adapter, delivery, [keys.secret])
        assert verification.key_id == keys.secret.key_id
        assert_signed_at(verification, case.expected_signed_at(adapter, at))
        parts = [carrier.label, *signed_headers(replace(case, keys=keys), adapter, delivery)]
        parts += [] if "body" in case.excluded else ["body"]
        part = data.draw(st.sampled_from(parts), label="part")
        index, bit = data.draw(st.integers(0), label="index"), data.draw(st.integers(0, 7), label="bit")
        if part == "body":
            positions = _body_positions(case, delivery)
            tampered = replace(delivery, body=flip_byte(delivery.body, positions[index % len(positions)], bit))
        elif part == carrier.label:
            value = carrier.value(delivery)
            position = carrier.flip_from + index % (len(value) - carrier.flip_from)
            tampered = carrier.replace(delivery, flip(value, position, bit))
        else:
            tampered = delivery.with_header(part, flip(delivery.header(part), index, bit))
        assert_tampered_refused(replace(case, keys=keys), adapter, delivery, tampered)

    check()


@cases()
def test_a_missing_signature_is_refused(case: Case) -> None:
    adapter = case.adapter()
    delivery = sample(case, adapter)
    missing = case.carrier_of(adapter).remove(delivery)
    assert refusal(case, adapter, missing, [case.keys.secret], original=delivery).reason == "missing_header"
    for name in signed_headers(case, adapter, delivery):
        missing = delivery.without_header(name)
        assert refusal(case, adapter, missing, [case.keys.secret], original=delivery).reason == "missing_header"


@cases(without="duplicate")
def test_a_repeated_signature_header_is_refused_with_the_same_or_another_value(case: Case) -> None:
    adapter = case.adapter()
    delivery = sample(case, adapter)
    carrier = case.carrier_of(adapter)
    assert isinstance(carrier, Header)
    for name in [carrier.name, *signed_headers(case, adapter, delivery)]:
        value = delivery.header(name)
        for second in (value, flip(value, len(value) - 1, 0)):
            for repeated in (delivery.plus_header(name.lower(), second), delivery.plus_header(name.upper(), second)):
                error = refusal(case, adapter, repeated, [case.keys.secret], (SignatureError,))
                assert error.reason == "duplicate_header"
            tampered = replace(delivery.plus_header(name, second), body=delivery.body + b" ")
            refusal(case, adapter, tampered, [case.keys.secret], (SignatureError,))


@cases(where=lambda case: case.timed(case.adapter()))
def test_a_signed_time_outside_the_replay_window_is_refused_and_inside_accepted(case: Case) -> None:
    adapter = case.adapter()
    past, future = case.window_of(adapter)
    for signed, accepted in [
        (NOW - past + 1, True),
        (NOW + future - 1, True),
        (NOW - past - 1, False),
        (NOW + future + 1, False),
    ]:
        delivery = replace(sample(case, adapter, signed), at=NOW)
        if accepted:
            assert verdict(adapter, delivery, [case.keys.secret]).key_id == case.keys.secret.key_id
        else:
            error = refusal(case, adapter, delivery, [case.keys.secret], (ReplayWindowError,))
            assert error.reason == ("timestamp_too_old" if signed < NOW else "timestamp_in_future")


@cases(where=lambda case: not case.timed(case.adapter()))
def test_a_scheme_that_signs_no_time_reports_none(case: Case) -> None:
    adapter = case.adapter()
    stale = replace(sample(case, adapter, NOW - 86_400 * 365), at=NOW)
    assert verdict(adapter, stale, [case.keys.secret]).signed_at is None


@cases()
def test_a_redelivery_keeps_its_dedupe_keys(case: Case) -> None:
    adapter = case.adapter()
    unsigned = adapter.sample(NOW)
    first = deliver(case, adapter, case.keys, unsigned, NOW)
    again = deliver(case, adapter, case.keys, unsigned, NOW + 60) if case.resign else replace(first, at=NOW + 60)
    assert verdict(adapter, again, [case.keys.secret]).key_id == case.keys.secret.key_id
    assert event_ids(adapter, again) == event_ids(adapter, first)
    assert len(set(event_ids(adapter, first))) == len(event_ids(adapter, first))


@cases(where=lambda case: case.unsigned is not None)
def test_the_spans_left_out_of_the_body_flips_are_unsigned_indeed(case: Case) -> None:
    """What a scheme documents as unsigned verifies when changed: the exclusion is no wider than that."""
    adapter = case.adapter()
    delivery = sample(case, adapter)
    assert case.unsigned is not None
    for start, end in case.unsigned(delivery.body):
        last_text = delivery.body.rindex(b'"', start, end) - 1  # the last character of a string in the span
        tampered = replace(delivery, body=flip_byte(delivery.body, last_text, 0))
        assert verdict(adapter, tampered, [case.keys.secret]).key_id == case.keys.secret.key_id


def _signature_bytes_guard_replays(case: Case) -> bool:
    """Whether the scheme's facts leave the signature bytes as what stops a captured request being accepted
    again under a new delivery id (no signed time, an unsigned dedupe key; docs/providers.md says so)."""
    scheme = case.adapter().scheme
    return scheme.replay_protection is None and scheme.timestamp is None and not scheme.dedupe_key_signed


@pytest.mark.parametrize(
    "case", [case for case in CASES if _signature_bytes_guard_replays(case)], ids=lambda case: case.id
)
def test_where_the_signature_bytes_guard_replays_verification_returns_them(case: Case) -> None:
    adapter = case.adapter()
    delivery = sample(case, adapter)
    signature = verdict(adapter, delivery, [case.keys.secret]).signature
    assert signature is not None
    assert verdict(adapter, replace(delivery, at=NOW + 60), [case.keys.secret]).signature == signature
