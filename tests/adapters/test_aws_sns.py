"""AWS SNS adapter: AWS-signed and reference vectors, certificate and topic trust, tampering, normalization.

The rules every provider keeps (round trips over messages and both signature versions, topic rotation,
every flipped bit of the signed fields and of the signature, the replay window, dedupe keys) are proven
for `aws-sns` by test_conformance.py."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, SignatureError
from adapters.keyhosts import key_hosts_allowed
from adapters.webhooks.aws_sns import AwsSnsAdapter, _string_to_sign
from tests.adapters.harness import refusal_reason, vector_document

DOC = vector_document("aws-sns")
VECTORS: list[dict[str, Any]] = DOC["vectors"]
ADAPTER = AwsSnsAdapter.configure()
SIGNER = SigningSecret("signer", DOC["referencePrivateKey"].encode())
CERT = DOC["certificates"]["reference"].encode()
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:orders"
NEW_TOPIC = SigningSecret("new", TOPIC.encode())
NOW = 1_716_300_000.0
NOTIFICATION: dict[str, Any] = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": TOPIC,
    "Subject": "Order A-1001 paid",
    "Message": '{"order":"A-1001","status":"paid"}\nline two',
    "Timestamp": "2024-05-21T14:00:00.000Z",
    "SignatureVersion": "1",
    "SigningCertURL": CERT_URL,
    "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + TOPIC + ":1",
}


def epoch(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp).timestamp()


def render(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields)


def inbound(body: bytes, *, keys: dict[str, bytes] | None = None, now: float = NOW) -> InboundRequest:
    keys = {CERT_URL: CERT} if keys is None else keys
    headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
    return InboundRequest(
        method="POST", url="https://hub.test/hooks/acme/sns", headers=headers, body=body, received_at=now, keys=keys
    )


def signed(signer: SigningSecret = SIGNER, now: float = NOW, **changes: Any) -> dict[str, Any]:
    """NOTIFICATION with `changes` (None removes a field), signed at `now`, as parsed fields."""
    fields = {k: v for k, v in {**NOTIFICATION, **changes}.items() if v is not None}
    result: dict[str, Any] = orjson.loads(ADAPTER.sign(TestRequest(headers={}, body=render(fields)), signer, now).body)
    return result


def reason_of(fields: dict[str, Any], secrets: list[SigningSecret] | None = None, **kwargs: Any) -> str:
    return refusal_reason(ADAPTER, inbound(render(fields), **kwargs), secrets or [NEW_TOPIC])


def certificate(key: rsa.RSAPrivateKey, start: dt.datetime, end: dt.datetime, *, can_sign: bool = True) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    builder = x509.CertificateBuilder(name, name, key.public_key(), 7, start, end)
    usage = x509.KeyUsage(can_sign, False, True, False, False, False, False, False, False)
    return (
        builder.add_extension(usage, critical=True).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )


OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_PEM = OTHER_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
OTHER_SIGNER = SigningSecret("other", OTHER_PEM)
SIGNING_KEY = serialization.load_pem_private_key(SIGNER.value, None)
assert isinstance(SIGNING_KEY, rsa.RSAPrivateKey)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['source']}-{json.loads(v['body'])['MessageId'][:8]}")
def test_vectors_verify_and_reference_ones_are_what_sign_produces(vector: dict[str, Any]) -> None:
    fields = json.loads(vector["body"])
    url, at = fields["SigningCertURL"], epoch(fields["Timestamp"])
    request = inbound(vector["body"].encode(), keys={url: DOC["certificates"][vector["certificate"]].encode()}, now=at)
    assert ADAPTER.key_urls(request) == [url]
    verification = ADAPTER.verify(request, [SigningSecret("topic", fields["TopicArn"].encode())])
    assert (verification.key_id, verification.signed_at) == ("topic", at)
    assert verification.scheme == ("rsa-sha1" if fields["SignatureVersion"] == "1" else "rsa-sha256")
    if vector["source"] == "reference":
        unsigned = {k: v for k, v in fields.items() if k != "Signature"}
        ours = orjson.loads(ADAPTER.sign(TestRequest(headers={}, body=render(unsigned)), SIGNER, at).body)
        assert ours == fields


def test_string_to_sign_of_each_type_matches_the_vectors() -> None:
    names = {}
    for vector in VECTORS:
        fields = json.loads(vector["body"])
        assert _string_to_sign(fields, "aws-sns") == vector["stringToSign"].encode()
        names[fields["Type"], "Subject" in fields] = re.findall(f"^({'|'.join(fields)})$", vector["stringToSign"], re.M)
    assert names["Notification", False] == ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
    assert names["Notification", True] == ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    confirmation = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    assert names["SubscriptionConfirmation", False] == names["UnsubscribeConfirmation", False] == confirmation


TAMPERING: dict[str, tuple[dict[str, Any], str]] = {
    "message": ({"Message": "other"}, "no_match"),
    "subject removed": ({"Subject": None}, "no_match"),
    "timestamp": ({"Timestamp": "2024-05-21T14:00:01.000Z"}, "no_match"),
    "message id": ({"MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf325"}, "no_match"),
    "version 1 to 2": ({"SignatureVersion": "2"}, "no_match"),
    "unknown version": ({"SignatureVersion": "3"}, "unsupported_scheme"),
    "unknown type": ({"Type": "Notice"}, "unsupported_scheme"),
    "type to confirmation": ({"Type": "SubscriptionConfirmation"}, "missing_header"),
    "no signature": ({"Signature": None}, "missing_header"),
    "no version": ({"SignatureVersion": None}, "missing_header"),
    "no certificate url": ({"SigningCertURL": None}, "missing_header"),
    "numeric message": ({"Message": 7}, "malformed_signature"),
    "bad timestamp": ({"Timestamp": "2024-05-21 14:00:00"}, "malformed_signature"),
}


@pytest.mark.parametrize(("changes", "reason"), TAMPERING.values(), ids=TAMPERING.keys())
def test_each_change_after_signing_is_refused(changes: dict[str, Any], reason: str) -> None:
    fields = signed()
    fields = {k: v for k, v in {**fields, **changes}.items() if v is not None}
    assert reason_of(fields) == reason


def test_signed_by_another_key_and_malformed_signatures() -> None:
    assert reason_of(signed(OTHER_SIGNER)) == "no_match"
    good = signed()["Signature"]
    for bad in [
        "",
        good[:-4],
        good + "AAAA",
        good.replace("=", ""),
        "!" + good[1:],
        base64.b64encode(b"x" * 128).decode(),
    ]:
        assert reason_of({**signed(), "Signature": bad}) == "malformed_signature"


@pytest.mark.parametrize("body", [b"", b"[1]", b"Type=Notification", b'{"a": NaN}', b"\xff"])
def test_bodies_that_are_not_sns_messages_are_unsigned(body: bytes) -> None:
    assert refusal_reason(ADAPTER, inbound(body), [NEW_TOPIC]) == "missing_header"


UNTRUSTED_URLS = [
    "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
    "https://sns.eu-west-1.amazonaws.com.evil.example/SimpleNotificationService-0123.pem",
    "https://s3.amazonaws.com/SimpleNotificationService-0123.pem",
    "https://evil.example/sns.eu-west-1.amazonaws.com/x.pem",
    "https://user@sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
    "https://sns.eu-west-1.amazonaws.com:8443/SimpleNotificationService-0123.pem",
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem?x=1",
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.crt",
    "https://sns.eu-west-1.amazonaws.com/a/../SimpleNotificationService-0123.pem",
    "https://SNS.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem",
    "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123.pem\n",
    "https://127.0.0.1/cert.pem",
]


@pytest.mark.parametrize("url", UNTRUSTED_URLS)
def test_certificate_urls_off_the_trusted_hosts_are_refused_before_any_fetch(url: str) -> None:
    fields = {**signed(), "SigningCertURL": url}
    with pytest.raises(SignatureError) as caught:
        ADAPTER.key_urls(inbound(render(fields)))
    assert caught.value.reason == "untrusted_key_url"
    assert reason_of(fields, keys={url: CERT}) == "untrusted_key_url"


def test_china_partition_is_trusted_by_default() -> None:
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-3242f45fd6fb1efa8ef6db8be3d4ba46.pem"
    assert ADAPTER.key_urls(inbound(render({**NOTIFICATION, "SigningCertURL": url}))) == [url]


def test_configured_hosts_replace_the_default_and_allow_http_only_to_loopback() -> None:
    with key_hosts_allowed(["127.0.0.1", "certs.example.com"]):  # the operator's setting
        adapter = AwsSnsAdapter.configure({"certificateHosts": ["127.0.0.1:8123", "certs.example.com"]})
    for url, trusted in [
        ("http://127.0.0.1:8123/cert.pem", True),
        ("https://certs.example.com/cert.pem", True),
        ("http://certs.example.com/cert.pem", False),
        ("http://127.0.0.1:8124/cert.pem", False),
        (CERT_URL, False),
    ]:
        request = inbound(render({**NOTIFICATION, "SigningCertURL": url}))
        if trusted:
            assert adapter.key_urls(request) == [url]
        else:
            assert refusal_reason(adapter, request, [NEW_TOPIC]) == "untrusted_key_url"
    fields = signed(SigningCertURL="http://127.0.0.1:8123/cert.pem")
    request = inbound(render(fields), keys={"http://127.0.0.1:8123/cert.pem": CERT})
    assert adapter.verify(request, [NEW_TOPIC]).key_id == "new"


@pytest.mark.parametrize(
    "options",
    [
        {"certificateHosts": ["https://x"]},
        {"certificateHosts": []},
        {"certificateHosts": ["Sns.example"]},
        {"signatureVersions": ["3"]},
        {"x": 1},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AwsSnsAdapter.configure(options)


def test_signature_versions_option_refuses_sha1() -> None:
    adapter = AwsSnsAdapter.configure({"signatureVersions": ["2"]})
    assert refusal_reason(adapter, inbound(render(signed())), [NEW_TOPIC]) == "unsupported_scheme"
    assert adapter.verify(inbound(render(signed(SignatureVersion="2"))), [NEW_TOPIC]).scheme == "rsa-sha256"


def test_certificate_problems() -> None:
    fields = signed()
    assert reason_of(fields, keys={}) == "key_unavailable"
    assert reason_of(fields, keys={CERT_URL: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}) == (
        "malformed_key"
    )
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    assert reason_of(fields, keys={CERT_URL: certificate(SIGNING_KEY, *past)}) == "untrusted_key"
    current = dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert reason_of(fields, keys={CERT_URL: certificate(SIGNING_KEY, *current, can_sign=False)}) == "untrusted_key"
    assert ADAPTER.verify(inbound(render(fields), keys={CERT_URL: certificate(SIGNING_KEY, *current)}), [NEW_TOPIC])


def test_secrets_are_topic_arns() -> None:
    ADAPTER.check_secret(NEW_TOPIC)
    ADAPTER.check_secret(SigningSecret("fifo", b"arn:aws-cn:sns:cn-north-1:123456789012:orders.fifo"))
    for value in [b"whsec_abc", b"arn:aws:sqs:eu-west-1:123456789012:q", b"arn:aws:sns:eu-west-1:1234:orders"]:
        with pytest.raises(ValueError, match="TopicArn"):
            ADAPTER.check_secret(SigningSecret("k", value))
    with pytest.raises(ValueError, match="private key"):
        ADAPTER.sign(ADAPTER.sample(NOW), NEW_TOPIC, NOW)


def test_confirmations_are_published_not_answered_as_handshakes() -> None:
    [vector] = [v for v in VECTORS if '"SubscriptionConfirmation"' in v["body"]]
    request = inbound(vector["body"].encode(), now=epoch(json.loads(vector["body"])["Timestamp"]))
    assert ADAPTER.handshake(request, [NEW_TOPIC]) is None
    assert ADAPTER.handshake(inbound(render(signed())), [NEW_TOPIC]) is None
    [event] = ADAPTER.normalize(request)
    body = json.loads(vector["body"])
    assert (event.type, event.id, event.subject) == ("aws-sns.subscription_confirmation", body["MessageId"], TOPIC)
    assert event.data["SubscribeURL"].startswith("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription")
    [unsubscribe] = [v for v in VECTORS if '"UnsubscribeConfirmation"' in v["body"]]
    assert ADAPTER.normalize(inbound(unsubscribe["body"].encode()))[0].type == "aws-sns.unsubscribe_confirmation"


def test_normalize_notification() -> None:
    fields = signed()
    [event] = ADAPTER.normalize(inbound(render(fields)))
    assert (event.id, event.type, event.subject) == (NOTIFICATION["MessageId"], "aws-sns.notification", TOPIC)
    assert event.time == dt.datetime.fromtimestamp(NOW, dt.UTC)
    assert event.data == fields


def test_normalize_publishes_the_value_that_was_verified_when_a_key_is_duplicated() -> None:
    body = render(signed())[:-1] + b',"Message":"forged"}'
    assert refusal_reason(ADAPTER, inbound(body), [NEW_TOPIC]) == "no_match"
    genuine = render(signed())
    duplicated = b'{"Message":"forged",' + genuine[1:]
    assert ADAPTER.verify(inbound(duplicated), [NEW_TOPIC]).key_id == "new"
    assert ADAPTER.normalize(inbound(duplicated))[0].data["Message"] == NOTIFICATION["Message"]


@pytest.mark.parametrize("body", [b"{}", b'{"Type":"Notification"}', b'{"Type":"X","MessageId":"1"}', b"[]", b"{"])
def test_normalize_refuses_bodies_without_type_or_id(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound(body))


def test_sample_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert sample.headers["x-amz-sns-message-type"] == "Notification"
    url = orjson.loads(sample.body)["SigningCertURL"]
    request = inbound(ADAPTER.sign(sample, SIGNER, NOW).body, keys={url: CERT})
    assert ADAPTER.key_urls(request) == [url]
    assert ADAPTER.verify(request, [SigningSecret("t", b"arn:aws:sns:us-east-1:123456789012:orders")]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject) == ("aws-sns.notification", "arn:aws:sns:us-east-1:123456789012:orders")


def test_the_hub_confirms_subscriptions_only_with_the_opt_in() -> None:
    subscribe = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC + "&Token=abc"
    confirmation = render(signed(Type="SubscriptionConfirmation", SubscribeURL=subscribe, Token="abc"))
    assert ADAPTER.confirmation_url(inbound(confirmation)) is None  # default: a consumer or operator confirms
    opted_in = AwsSnsAdapter.configure({"confirmSubscriptions": True})
    assert opted_in.confirmation_url(inbound(confirmation)) == subscribe
    assert opted_in.confirmation_url(inbound(render(signed()))) is None  # a notification confirms nothing
    off_host = render(
        signed(
            Type="SubscriptionConfirmation",
            SubscribeURL="https://evil.example/?Action=ConfirmSubscription&x=1",
            Token="abc",
        )
    )
    with pytest.raises(SignatureError) as refused:
        opted_in.confirmation_url(inbound(off_host))
    assert refused.value.reason == "untrusted_key_url"
