"""Providers verified with fetched public keys, through the real ingress: an SNS signing certificate and
a Pub/Sub JWKS served by a loopback server (which the operator's settings allow, LOOPBACK), fetched
once by the hub's key cache and used for every delivery. Requests are signed here with `cryptography`
and PyJWT, independently of the adapters' `sign`."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.conftest import HubFactory, HubUnderTest, Reply
from tests.hub.ingress.signing import TENANT, SecretSpec, connector_doc, specs_yaml

pytestmark = pytest.mark.integration

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FORGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:orders"
SERVICE_ACCOUNT = "pubsub-push@example-project.iam.gserviceaccount.com"
AUDIENCE = "https://hooks.example.com/hooks/acme/pubsub"
KID = "7d680d8c70d44e947133cbd499ebc1a61c3d5abc"
SNS_HEADERS = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}
LOOPBACK = {"key_fetch_allowed_hosts": ["127.0.0.1"], "key_fetch_allowed_networks": ["127.0.0.0/8"]}
"""The operator's settings that let connectors fetch keys from the loopback key server."""


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def certificate_pem() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder(
        name, name, KEY.public_key(), 1, now - dt.timedelta(days=1), now + dt.timedelta(days=1)
    )
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def jwks() -> bytes:
    numbers = KEY.public_key().public_numbers()
    key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID}
    key |= {"n": b64url(numbers.n.to_bytes(256, "big")), "e": b64url(numbers.e.to_bytes(3, "big"))}
    return json.dumps({"keys": [key]}).encode()


@dataclass
class KeyServer:
    base: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def key_server() -> AsyncIterator[KeyServer]:
    content = {"/SimpleNotificationService-test.pem": certificate_pem(), "/oauth2/v3/certs": jwks()}
    server = KeyServer("")

    async def serve(request: web.Request) -> web.Response:
        server.hits.append(request.path)
        return web.Response(body=content[request.path])

    async def confirm(request: web.Request) -> web.Response:
        server.hits.append(request.path_qs)
        return web.Response(body=b"<ConfirmSubscriptionResponse/>")

    app = web.Application()
    for path in content:
        app.router.add_get(path, serve)
    app.router.add_get("/", confirm)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    server.base = f"http://{host}:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


async def start(make_hub: HubFactory, provider: str, secret: str, options: dict[str, Any]) -> HubUnderTest:
    spec = SecretSpec("k1", f"SECRET_{provider.upper().replace('-', '_')}", secret)
    doc = connector_doc(provider, provider, [spec], webhook={"options": options})
    return await make_hub(specs_yaml(doc), env={spec.env: secret}, **LOOPBACK)


def assert_refused(reply: Reply, error: str, reason: str) -> None:
    assert reply.status == 401, (reply.status, reply.body)
    assert (reply.json()["error"], reply.json()["reason"]) == (error, reason)


# --- Amazon SNS -------------------------------------------------------------------------------


def sns_message(
    cert_url: str,
    key: rsa.RSAPrivateKey = KEY,
    kind: str = "Notification",
    sns_base: str = "https://sns.eu-west-1.amazonaws.com",
) -> tuple[dict[str, Any], bytes]:
    """An SNS message signed as the AWS docs describe (SignatureVersion 1, SHA1withRSA)."""
    fields = {"Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC}
    if kind == "Notification":
        fields |= {"Subject": "Order paid", "Message": '{"order":"A-1001","status":"paid"}'}
        names: tuple[str, ...] = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    else:
        token = uuid.uuid4().hex * 4
        confirm = f"{sns_base}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"
        fields |= {"Token": token, "Message": "You have chosen to subscribe ...", "SubscribeURL": confirm}
        names = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    fields |= {"Timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
    signed = "".join(f"{name}\n{fields[name]}\n" for name in names).encode()
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - SignatureVersion 1 is SHA1withRSA
    fields |= {"SignatureVersion": "1", "Signature": base64.b64encode(signature).decode(), "SigningCertURL": cert_url}
    return fields, json.dumps(fields, indent=2).encode()


async def test_sns_delivery_lands_forgeries_are_refused_and_the_cert_is_fetched_once(
    make_hub: HubFactory, key_server: KeyServer
) -> None:
    authority = key_server.base.removeprefix("http://")
    hub = await start(make_hub, "aws-sns", TOPIC, {"certificateHosts": [authority]})
    cert_url = f"{key_server.base}/SimpleNotificationService-test.pem"
    path = f"{TENANT}/aws-sns"

    fields, body = sns_message(cert_url)
    reply = await hub.post(path, body, SNS_HEADERS)
    assert reply.status == 202, reply.body
    assert reply.json()["ids"] == [fields["MessageId"]]
    [message] = await hub.events()
    envelope = orjson.loads(message.data)
    expected = {"id": fields["MessageId"], "type": "aws-sns.notification", "subject": TOPIC, "hubprovider": "aws-sns"}
    expected |= {"hubverified": "rsa-sha1", "hubkeyid": "k1", "hubbodysha256": hashlib.sha256(body).hexdigest()}
    assert {k: envelope.get(k) for k in expected} == expected
    assert envelope["data"] == fields
    assert envelope["time"] == fields["Timestamp"]

    _, body = sns_message(cert_url)
    assert (await hub.post(path, body, SNS_HEADERS)).status == 202
    assert (await hub.post(path, body, SNS_HEADERS)).status == 200  # the same MessageId again: a duplicate
    assert key_server.hits == ["/SimpleNotificationService-test.pem"]  # one fetch for three deliveries

    _, forged = sns_message(cert_url, FORGER)
    assert_refused(await hub.post(path, forged, SNS_HEADERS), "bad_signature", "no_match")
    elsewhere = f"http://127.0.0.2:{authority.rsplit(':', 1)[1]}/SimpleNotificationService-test.pem"
    _, off_host = sns_message(elsewhere)
    assert_refused(await hub.post(path, off_host, SNS_HEADERS), "bad_signature", "untrusted_key_url")
    _, aws_host = sns_message("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem")
    reply = await hub.post(path, aws_host, SNS_HEADERS)  # the certificateHosts option replaces the AWS hosts
    assert_refused(reply, "bad_signature", "untrusted_key_url")
    assert key_server.hits == ["/SimpleNotificationService-test.pem"]
    assert await hub.event_count() == 2

    confirmation, body = sns_message(cert_url, kind="SubscriptionConfirmation")
    assert (await hub.post(path, body, SNS_HEADERS)).status == 202  # published for someone to confirm, not answered
    envelope = orjson.loads((await hub.events())[-1].data)
    assert envelope["type"] == "aws-sns.subscription_confirmation"
    assert envelope["data"]["SubscribeURL"] == confirmation["SubscribeURL"]


async def test_sns_subscription_is_confirmed_by_the_hub_only_with_the_opt_in(
    make_hub: HubFactory, key_server: KeyServer
) -> None:
    authority = key_server.base.removeprefix("http://")
    options = {"certificateHosts": [authority], "confirmSubscriptions": True}
    hub = await start(make_hub, "aws-sns", TOPIC, options)
    cert_url = f"{key_server.base}/SimpleNotificationService-test.pem"
    confirmation, body = sns_message(cert_url, kind="SubscriptionConfirmation", sns_base=key_server.base)

    assert (await hub.post(f"{TENANT}/aws-sns", body, SNS_HEADERS)).status == 202
    visits = [hit for hit in key_server.hits if hit.startswith("/?Action=ConfirmSubscription")]
    assert visits == [confirmation["SubscribeURL"].removeprefix(key_server.base)]  # visited once, after publishing
    assert orjson.loads((await hub.events())[-1].data)["type"] == "aws-sns.subscription_confirmation"

    # a SubscribeURL off the trusted hosts is refused, even though AWS signed it
    _, elsewhere = sns_message(cert_url, kind="SubscriptionConfirmation", sns_base="https://evil.example")
    assert_refused(await hub.post(f"{TENANT}/aws-sns", elsewhere, SNS_HEADERS), "bad_signature", "untrusted_key_url")
    assert await hub.event_count() == 1  # refused before anything was published


async def test_sns_in_shadow_mode_accepts_an_untrusted_certificate_url_unverified(
    make_hub: HubFactory, key_server: KeyServer
) -> None:
    spec = SecretSpec("k1", "SECRET_AWS_SNS_SHADOW", TOPIC)
    options = {"certificateHosts": [key_server.base.removeprefix("http://")]}
    doc = connector_doc("aws-sns", "aws-sns", [spec], webhook={"options": options, "verification": "shadow"})
    hub = await make_hub(specs_yaml(doc), env={spec.env: TOPIC}, **LOOPBACK)
    _, off_host = sns_message("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem")
    assert (await hub.post(f"{TENANT}/aws-sns", off_host, SNS_HEADERS)).status == 202
    assert orjson.loads((await hub.events())[-1].data)["hubverified"] == "none"
    assert key_server.hits == []  # refused before any fetch, then accepted unverified (shadow)


# --- Google Pub/Sub ---------------------------------------------------------------------------


def pubsub_push(**claims: Any) -> tuple[bytes, dict[str, str], str]:
    """A wrapped push and its `Authorization`, the token signed as Google does (RS256 with a kid)."""
    message_id = str(uuid.uuid4().int)[:16]
    published = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = {"attributes": {"eventType": "OBJECT_FINALIZE"}, "data": base64.b64encode(b'{"name":"a.csv"}').decode()}
    message |= {"messageId": message_id, "publishTime": published}
    body = orjson.dumps({"message": message, "subscription": "projects/example-project/subscriptions/hub-push"})
    now = int(time.time())
    payload = {"aud": AUDIENCE, "azp": "1137", "email": SERVICE_ACCOUNT, "sub": "1137", "email_verified": True}
    payload |= {"exp": now + 3600, "iat": now, "iss": "https://accounts.google.com"} | claims
    kid = payload.pop("kid", KID)
    token = jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": kid})
    return body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, message_id


async def test_pubsub_push_lands_bad_tokens_are_refused_and_the_jwks_is_fetched_once(
    make_hub: HubFactory, key_server: KeyServer
) -> None:
    options = {"audience": AUDIENCE, "jwksUrl": f"{key_server.base}/oauth2/v3/certs"}
    hub = await start(make_hub, "google-pubsub", SERVICE_ACCOUNT, options)
    path = f"{TENANT}/google-pubsub"

    body, headers, message_id = pubsub_push()
    reply = await hub.post(path, body, headers)
    assert reply.status == 202, reply.body
    [message] = await hub.events()
    envelope = orjson.loads(message.data)
    expected = {"id": message_id, "type": "google-pubsub.OBJECT_FINALIZE", "hubverified": "oidc-rs256"}
    expected |= {"subject": "projects/example-project/subscriptions/hub-push", "hubkeyid": "k1"}
    assert {k: envelope.get(k) for k in expected} == expected
    assert (envelope["data"]["data"], envelope["data"]["dataEncoding"]) == ({"name": "a.csv"}, "json")

    body, headers, _ = pubsub_push()
    assert (await hub.post(path, body, headers)).status == 202
    assert key_server.hits == ["/oauth2/v3/certs"]  # one fetch for two deliveries

    body, headers, _ = pubsub_push(aud="https://hooks.example.com/hooks/acme/other")
    assert_refused(await hub.post(path, body, headers), "bad_signature", "wrong_audience")
    body, headers, _ = pubsub_push(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    assert_refused(await hub.post(path, body, headers), "replay_window", "timestamp_too_old")
    body, headers, _ = pubsub_push(kid="0" * 40)
    assert_refused(await hub.post(path, body, headers), "bad_signature", "unknown_key")
    body, headers, _ = pubsub_push(email="attacker@evil-project.iam.gserviceaccount.com")
    assert_refused(await hub.post(path, body, headers), "bad_signature", "untrusted_sender")
    unauthenticated = await hub.post(path, body, {"Content-Type": "application/json"})
    assert_refused(unauthenticated, "bad_signature", "missing_header")
    assert key_server.hits == ["/oauth2/v3/certs"]
    assert await hub.event_count() == 2
