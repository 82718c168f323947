"""Amazon SNS HTTP/S subscriptions: an RSA signature in the JSON body, checked with the X.509
certificate at `SigningCertURL`, which the hub fetches (`key_urls`) only from a trusted host: AWS's
own SNS hosts, or the `certificateHosts` option's, each of which must be an SNS host or one the
operator allows (adapters/keyhosts.py).

Signed content (AWS "Verifying the signatures of Amazon SNS messages", as AWS's PHP validator builds
it): `Name\\nvalue\\n` per field, values JSON-decoded. Notification: `Message, MessageId, Subject (if
present), Timestamp, TopicArn, Type`; Subscription- and UnsubscribeConfirmation: `Message, MessageId,
SubscribeURL, Timestamp, Token, TopicArn, Type`. SignatureVersion 1 = SHA1withRSA, 2 = SHA256withRSA
(PKCS#1 v1.5), base64. `MessageAttributes` and `UnsubscribeURL` are not signed. Raw message delivery
carries no signature and is refused.

Secrets: SNS has no shared secret. Each connector secret is an accepted `TopicArn`; `key_id` names the
topic that matched, and any other topic, even one AWS signed, is refused (`untrusted_topic`): anyone
can have AWS sign messages of a topic of their own.

A verified SubscriptionConfirmation is published like any event, as `aws-sns.subscription_confirmation`
carrying `SubscribeURL` and `Token`, and answered 202. By default nobody visits `SubscribeURL` for
you: a consumer or an operator confirms within 2 days. With the explicit opt-in
`confirmSubscriptions: true`, the hub itself visits it once the confirmation is published
(`confirmation_url`), only on the same trusted hosts as the certificate. UnsubscribeConfirmation
becomes `aws-sns.unsubscribe_confirmation` and is never acted on.
"""

from __future__ import annotations

import base64
import hmac
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from adapters.base import (
    InboundRequest,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import PayloadError, SignatureError
from adapters.fields import iso_time
from adapters.keyhosts import check_key_host, is_loopback
from adapters.signing import body_field, decode_base64

_CONFIRMATION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION,
    "UnsubscribeConfirmation": _CONFIRMATION,
}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
MIN_KEY_BITS = 2048
_AWS_HOST = re.compile(r"sns\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.amazonaws\.com(?:\.cn)?")
"""`sns.<region>.amazonaws.com` and the China partition's `.amazonaws.com.cn` (as the Java SDK v2)."""
_HOST = r"[a-z0-9.-]{1,253}|\[[0-9a-f:.]{2,45}\]"
_CERT_URL = re.compile(rf"(https?)://({_HOST})(?::([0-9]{{1,5}}))?/[A-Za-z0-9._-]{{1,200}}\.pem")
_SUBSCRIBE_URL = re.compile(rf"(https?)://({_HOST})(?::([0-9]{{1,5}}))?/\?Action=ConfirmSubscription&[^\s#]{{1,2048}}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z")
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]{1,32}:[0-9]{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?")
_CAMEL = re.compile(r"(?<=[a-z])([A-Z])")
Authority = Annotated[str, StringConstraints(pattern=rf"^({_HOST})(:[0-9]{{1,5}})?$")]


class AwsSnsOptions(BaseModel):
    """Options of the SNS adapter (`spec.webhook.options`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificateHosts: tuple[Authority, ...] | None = Field(
        None,
        min_length=1,
        description="Exact hosts (`host` or `host:port`, lowercase) the signing certificate may come from, "
        "replacing the default `sns.<region>.amazonaws.com[.cn]` over https; each an SNS host or one the operator "
        "allows (HUB_KEY_FETCH_ALLOWED_HOSTS), plain http only to a listed loopback host (tests, a local mirror).",
    )
    confirmSubscriptions: bool = Field(
        False,
        description="Opt-in: the hub visits a verified SubscriptionConfirmation's SubscribeURL (on a trusted "
        "host only) once it is published; by default a consumer or an operator confirms.",
    )
    signatureVersions: tuple[Literal["1", "2"], ...] = Field(
        ("1", "2"),
        min_length=1,
        description='Accepted SignatureVersion values, "1" (SHA1withRSA, the topic default) and "2" '
        '(SHA256withRSA); ["2"] once the topic signs with version 2.',
    )

    @field_validator("certificateHosts")
    @classmethod
    def _allowed_hosts(cls, authorities: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """Each an SNS host or one the operator allows: a tenant's document cannot choose another."""
        for index, authority in enumerate(authorities or ()):
            host = authority if authority.endswith("]") or ":" not in authority else authority.rpartition(":")[0]
            own = _AWS_HOST.fullmatch(host) is not None
            option = f"certificateHosts[{index}]"
            check_key_host(option, host, scheme="https", own=own, provider_hosts="sns.<region>.amazonaws.com")
        return authorities


SNS_RETRY_SPAN_S = 3900.0
"""SNS keeps a message's `Timestamp` on every retry, and an HTTP/S delivery policy retries for up to
3,600 s (AWS caps a policy's total at an hour); 5 minutes more cover the first attempt's delay and
clock skew. A longer window costs nothing here: the signed MessageId is the dedupe key, so a replay
inside the window is a duplicate (Valkey's done mark outlives it), and the certificate signature
stops any altered message."""


class AwsSnsAdapter(WebhookAdapter[AwsSnsOptions]):
    """Amazon SNS notifications and subscription messages to an HTTP/S endpoint."""

    name: ClassVar[str] = "aws-sns"
    options_model: ClassVar[type[BaseModel]] = AwsSnsOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header="Signature in the JSON body (with SignatureVersion and SigningCertURL)",
        algorithm="RSA PKCS#1 v1.5, SHA1withRSA (SignatureVersion 1) or SHA256withRSA (2), certificate at "
        "SigningCertURL (https, sns.<region>.amazonaws.com); the secrets are the accepted TopicArns",
        signed_content="Name\\nvalue\\n per field; Notification: Message, MessageId, Subject (if present), "
        "Timestamp, TopicArn, Type; (Un)SubscriptionConfirmation: Message, MessageId, SubscribeURL, "
        "Timestamp, Token, TopicArn, Type",
        encoding="base64",
        timestamp="Timestamp in the body, ISO 8601 UTC (the publish time, kept on retries)",
        dedupe_key="MessageId in the body (kept on retries)",
        handshake="none: a SubscriptionConfirmation is published as aws-sns.subscription_confirmation for a "
        "consumer or operator to visit SubscribeURL; the hub never confirms",
        delivery_timeout_s=10.0,
        dedupe_key_signed=True,
        default_replay_window_s=SNS_RETRY_SPAN_S,
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """Each secret is an accepted topic, `arn:aws:sns:<region>:<account>:<topic>`."""
        if not _TOPIC_ARN.fullmatch(secret.value.decode("ascii", errors="replace")):
            raise ValueError(f"secret {secret.key_id}: an aws-sns secret is an accepted TopicArn (arn:aws:sns:...)")

    def key_urls(self, request: InboundRequest) -> list[str]:
        """`SigningCertURL`, once its scheme, host and path are trusted."""
        return [self._certificate_url(_message(request, self.name))]

    def confirmation_url(self, request: InboundRequest) -> str | None:
        """`SubscribeURL` of a verified SubscriptionConfirmation, when the connector opted in."""
        fields = _message(request, self.name)
        if not self.options.confirmSubscriptions or fields.get("Type") != "SubscriptionConfirmation":
            return None
        url = body_field(fields, "SubscribeURL", self.name)
        match = _SUBSCRIBE_URL.fullmatch(url)
        if match is None or not self._trusted_host(*match.groups()):
            raise SignatureError(self.name, "untrusted_key_url", "SubscribeURL is not on a trusted host over https")
        return url

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the RSA signature over the type's signed fields, then the topic against the secrets."""
        fields = _message(request, self.name)
        kind, version = body_field(fields, "Type", self.name), body_field(fields, "SignatureVersion", self.name)
        if kind not in SIGNED_FIELDS or version not in self.options.signatureVersions:
            raise SignatureError(self.name, "unsupported_scheme", "unsupported Type or SignatureVersion")
        pem = request.keys.get(self._certificate_url(fields))
        if pem is None:
            raise SignatureError(self.name, "key_unavailable", "the signing certificate was not fetched")
        key = _certificate_key(pem, request.received_at, self.name)
        signature = decode_base64(body_field(fields, "Signature", self.name), key.key_size // 8, self.name)
        if (moment := _parse_time(body_field(fields, "Timestamp", self.name))) is None:
            raise SignatureError(self.name, "malformed_signature", "Timestamp is not ISO 8601 UTC")
        try:
            key.verify(signature, _string_to_sign(fields, self.name), padding.PKCS1v15(), HASHES[version]())
        except InvalidSignature:
            raise SignatureError(self.name, "no_match", "the signature does not verify") from None
        topic = fields["TopicArn"].encode()
        for secret in secrets:
            if hmac.compare_digest(secret.value, topic):
                scheme = f"rsa-sha{'1' if version == '1' else '256'}"
                return Verification(scheme, secret.key_id, moment.timestamp(), signature)
        raise SignatureError(self.name, "untrusted_topic", "the TopicArn is not one of the connector's topics")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: id = MessageId, `aws-sns.<notification|...>`, subject = TopicArn, data = the message."""
        body = request.json_object()
        kind, message_id, topic = body.get("Type"), body.get("MessageId"), body.get("TopicArn")
        if kind not in SIGNED_FIELDS or not isinstance(message_id, str) or not message_id:
            raise PayloadError("invalid_event", "the body has no known Type or no string MessageId")
        event = _CAMEL.sub(r"_\1", kind).lower()
        return [
            NormalizedEvent(
                id=message_id,
                type=f"{self.name}.{event}",
                data=body,  # re-serialized from the verified parse: a duplicated key cannot reach consumers
                subject=topic if isinstance(topic, str) else None,
                time=_parse_time(body.get("Timestamp")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An unsigned Notification of `orders` in us-east-1 (`sign` adds Signature)."""
        topic, message_id = "arn:aws:sns:us-east-1:123456789012:orders", str(uuid.uuid4())
        subscription, host = f"{topic}:{uuid.uuid4()}", "https://sns.us-east-1.amazonaws.com"
        fields = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic,
            "Subject": "Order A-1001 paid",
            "Message": orjson.dumps({"order": "A-1001", "status": "paid", "amount": {"value": 4200}}).decode(),
            "Timestamp": _format_time(now),
            "SignatureVersion": "1",
            "SigningCertURL": f"{host}/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            "UnsubscribeURL": f"{host}/?Action=Unsubscribe&SubscriptionArn={subscription}",
        }
        amz = {"message-type": "Notification", "message-id": message_id, "topic-arn": topic}
        headers = {f"x-amz-sns-{name}": value for name, value in {**amz, "subscription-arn": subscription}.items()}
        headers |= {
            "Content-Type": "text/plain; charset=UTF-8",
            "User-Agent": "Amazon Simple Notification Service Agent",
        }
        return TestRequest(headers=headers, body=_render(fields))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Sign as SNS does with a test RSA key (`secret.value`: its PEM private key): `Timestamp` = `now`,
        `Signature` after `SignatureVersion` (default "1"). Only AWS holds the real key, so a connector's
        own secret (a TopicArn) cannot sign: that is a ValueError."""
        key = _private_key(secret)
        try:
            fields = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            fields = None
        if not isinstance(fields, dict) or fields.get("Type") not in SIGNED_FIELDS:
            raise ValueError("aws-sns signs a JSON object body with a known Type")
        fields = {name: value for name, value in fields.items() if name != "Signature"}
        fields.setdefault("SignatureVersion", "1")
        fields["Timestamp"] = _format_time(now)
        raw = key.sign(_string_to_sign(fields, self.name), padding.PKCS1v15(), HASHES[fields["SignatureVersion"]]())
        items = list(fields.items())
        at = list(fields).index("SignatureVersion") + 1
        signed = dict([*items[:at], ("Signature", base64.b64encode(raw).decode()), *items[at:]])
        return TestRequest(headers=dict(request.headers), body=_render(signed))

    def _certificate_url(self, fields: dict[str, Any]) -> str:
        """SigningCertURL if it is a `.pem` on a trusted host, else `untrusted_key_url`."""
        match = _CERT_URL.fullmatch(body_field(fields, "SigningCertURL", self.name))
        if match is None:
            raise SignatureError(self.name, "untrusted_key_url", "SigningCertURL is not an http(s) URL of a .pem")
        if not self._trusted_host(*match.groups()):
            raise SignatureError(self.name, "untrusted_key_url", "SigningCertURL is not on a trusted host over https")
        return match[0]

    def _trusted_host(self, scheme: str, host: str, port: str | None) -> bool:
        """AWS's own SNS hosts over https, or exactly the `certificateHosts` configured."""
        if self.options.certificateHosts is None:
            return scheme == "https" and port is None and _AWS_HOST.fullmatch(host) is not None
        authority = host if port is None else f"{host}:{port}"
        return authority in self.options.certificateHosts and (scheme == "https" or is_loopback(host))


def _message(request: InboundRequest, provider: str) -> dict[str, Any]:
    """The body as a JSON object; anything else carries no signature."""
    try:
        body = request.json()
    except PayloadError:
        body = None
    if not isinstance(body, dict):
        raise SignatureError(provider, "missing_header", "the body is not an SNS JSON message")
    return body


def _string_to_sign(fields: dict[str, Any], provider: str) -> bytes:
    """`Name\\nvalue\\n` per signed field of the message's Type; a null Subject counts as absent (AWS's JS
    validator does the same)."""
    names = [n for n in SIGNED_FIELDS[fields["Type"]] if n != "Subject" or fields.get(n) is not None]
    return "".join(f"{name}\n{body_field(fields, name, provider)}\n" for name in names).encode()


def _certificate_key(pem: bytes, now: float, provider: str) -> RSAPublicKey:
    """The certificate's RSA key, if the certificate is valid at `now` and may sign."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise SignatureError(provider, "malformed_key", "the signing certificate is not a PEM X.509") from None
    key = certificate.public_key()
    if not isinstance(key, RSAPublicKey) or key.key_size < MIN_KEY_BITS:
        raise SignatureError(provider, "untrusted_key", f"the certificate key is not RSA of {MIN_KEY_BITS}+ bits")
    if not certificate.not_valid_before_utc.timestamp() <= now <= certificate.not_valid_after_utc.timestamp():
        raise SignatureError(provider, "untrusted_key", "the signing certificate is not valid now")
    try:
        if not certificate.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            raise SignatureError(provider, "untrusted_key", "the certificate may not sign")
    except x509.ExtensionNotFound:
        pass
    return key


def _private_key(secret: SigningSecret) -> RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(secret.value, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"secret {secret.key_id}: signing needs a test RSA private key (PEM); only AWS signs SNS")
    return key


def _parse_time(value: Any) -> datetime | None:
    """`2012-05-02T00:54:06.655Z` (fractions of up to 9 digits, truncated to microseconds), else None."""
    return iso_time(value, pattern=_TIMESTAMP)


def _format_time(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _render(fields: dict[str, Any]) -> bytes:
    """The body laid out as SNS sends it: one `"Name" : value` per line."""
    lines = (f"  {orjson.dumps(name).decode()} : {orjson.dumps(value).decode()}" for name, value in fields.items())
    return ("{\n" + ",\n".join(lines) + "\n}").encode()
