"""Every provider handshake the adapters answer, as the provider sends it, for the ingress tests.

Requests are signed with each adapter's own `sign` (pinned to the providers' published vectors and
SDKs by tests/adapters); what these tests look at is what the hub does with them, not the signing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.base import SigningSecret, TestRequest
from adapters.registry import webhook_adapter
from tests.conftest import HubUnderTest, Reply
from tests.hub.ingress.signing import TENANT, SecretSpec, connector_doc, specs_yaml

_DISCORD_KEY = Ed25519PrivateKey.generate()
DISCORD_PUBLIC = _DISCORD_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
DISCORD_SIGNER = SigningSecret(
    "test-pair",
    (
        _DISCORD_KEY.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        ).hex()
        + DISCORD_PUBLIC.hex()
    ).encode(),
)
SECRETS = {
    "github": "gh-handshake-secret",
    "intercom": "intercom-client-secret",
    "slack": "slack-signing-secret",
    "discord": DISCORD_PUBLIC.hex(),
    "twitch": "twitch-subscription-secret",
    "x": "x-consumer-secret",
    "zoom": "zoom-secret-token",
    "msgraph": "graph-client-state",
}
"""Each provider's connector secret (the provider name is also the connector's name)."""
SIGNERS = {"discord": DISCORD_SIGNER}
"""Where the connector's secret cannot sign (a public key), the key that can."""
PLAIN_TOKEN = "qgg8vlvZRS6UYooatFL8Aw"
CHALLENGE = "pogchamp-kappa-360noscope-vohiyo"
CRC_TOKEN = "crc-token-from-x"
VALIDATION_TOKEN = "Validation: Token <script>alert(1)</script>"
"""Graph's token is echoed verbatim: attacker text, which must never be sniffed into HTML."""


def env_name(provider: str) -> str:
    return f"HANDSHAKE_{provider.upper()}_SECRET"


def connectors_yaml(providers: Sequence[str], *, suffix: str = "", **webhook: Any) -> str:
    """One connector per provider, named `<provider><suffix>`, with the provider's secret."""
    docs = [
        connector_doc(
            f"{provider}{suffix}", provider, [SecretSpec("k1", env_name(provider), SECRETS[provider])], webhook=webhook
        )
        for provider in providers
    ]
    return specs_yaml(*docs)


def secrets_env(providers: Sequence[str]) -> dict[str, str]:
    return {env_name(provider): SECRETS[provider] for provider in providers}


def sign(provider: str, request: TestRequest, now: float | None = None) -> TestRequest:
    """`request` signed as the provider signs it, with the connector's secret (or the key pair's private key)."""
    adapter = webhook_adapter(provider).configure()
    secret = SIGNERS.get(provider, SigningSecret("k1", SECRETS[provider].encode()))
    return adapter.sign(request, secret, time.time() if now is None else now)


@dataclass(frozen=True)
class Handshake:
    """A handshake request (unsigned; `signed` is False where the provider signs none) and its answer."""

    id: str
    provider: str
    request: TestRequest
    status: int
    answer: bytes
    method: str = "POST"
    query: str = ""
    signed: bool = True

    def sent(self, *, signed: bool = True) -> TestRequest:
        """The request as sent: signed as the provider signs it, unless `signed` is False."""
        return sign(self.provider, self.request) if signed and self.signed else self.request


def _json(headers: dict[str, str], body: dict[str, Any]) -> TestRequest:
    return TestRequest(headers={"Content-Type": "application/json", **headers}, body=orjson.dumps(body))


def _x_crc_answer(token: str) -> bytes:
    digest = hmac.new(SECRETS["x"].encode(), token.encode(), hashlib.sha256).digest()
    return orjson.dumps({"response_token": "sha256=" + base64.b64encode(digest).decode()})


def handshakes() -> list[Handshake]:
    """One of each handshake an adapter answers."""
    now_ms = int(time.time() * 1000)
    zoom_answer = hmac.new(SECRETS["zoom"].encode(), PLAIN_TOKEN.encode(), hashlib.sha256).hexdigest()
    slack_challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    twitch_subscription = {"id": str(uuid.uuid4()), "type": "channel.follow", "version": "2", "status": "pending"}
    return [
        Handshake(
            "github-ping",
            "github",
            _json({"X-GitHub-Event": "ping", "X-GitHub-Delivery": str(uuid.uuid4())}, {"zen": "Keep it simple."}),
            200,
            b'{"handshake":"ping"}',
        ),
        Handshake(
            "intercom-ping",
            "intercom",
            _json({}, {"type": "notification_event", "topic": "ping", "id": "notif_1", "data": {"item": {}}}),
            200,
            b'{"handshake":"ping"}',
        ),
        Handshake(
            "slack-url-verification",
            "slack",
            _json({}, {"token": "t", "challenge": slack_challenge, "type": "url_verification"}),
            200,
            slack_challenge.encode(),
        ),
        Handshake(
            "slack-ssl-check",
            "slack",
            TestRequest(headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"ssl_check=1&token=t"),
            200,
            b"",
        ),
        Handshake(
            "discord-interaction-ping",
            "discord",
            _json({}, {"id": "1180000000000000000", "application_id": "1", "type": 1, "token": "t", "version": 1}),
            200,
            b'{"type":1}',
        ),
        Handshake(
            "discord-events-ping",
            "discord",
            _json({}, {"version": 1, "application_id": "1", "type": 0}),
            204,
            b"",
        ),
        Handshake(
            "twitch-challenge",
            "twitch",
            _json(
                {"Twitch-Eventsub-Message-Type": "webhook_callback_verification"},
                {"challenge": CHALLENGE, "subscription": twitch_subscription},
            ),
            200,
            CHALLENGE.encode(),
        ),
        Handshake(
            "zoom-url-validation",
            "zoom",
            _json({}, {"payload": {"plainToken": PLAIN_TOKEN}, "event_ts": now_ms, "event": "endpoint.url_validation"}),
            200,
            orjson.dumps({"plainToken": PLAIN_TOKEN, "encryptedToken": zoom_answer}),
        ),
        Handshake(
            "x-crc",
            "x",
            TestRequest(headers={}, body=b""),
            200,
            _x_crc_answer(CRC_TOKEN),
            method="GET",
            query=f"?crc_token={CRC_TOKEN}",
            signed=False,  # X signs no CRC: the adapter answers exactly the documented shape
        ),
        Handshake(
            "msgraph-validation",
            "msgraph",
            TestRequest(headers={}, body=b""),
            200,
            VALIDATION_TOKEN.encode(),
            query=f"?validationToken={quote(VALIDATION_TOKEN)}",
            signed=False,  # Graph signs no validation: the adapter answers exactly the documented shape
        ),
    ]


async def send(hub: HubUnderTest, connector: str, handshake: Handshake, *, signed: bool = True) -> Reply:
    """Send the handshake to `connector` (a name of tenant TENANT) through the hub's ingress."""
    request = handshake.sent(signed=signed)
    url = f"{hub.url}/hooks/{TENANT}/{connector}{handshake.query}"
    async with hub.session.request(
        handshake.method, url, data=request.body, headers=request.headers, allow_redirects=False
    ) as response:
        return Reply(response.status, await response.read(), dict(response.headers))


PROVIDERS = sorted({h.provider for h in handshakes()})
SIGNED_HANDSHAKES = [h for h in handshakes() if h.signed]
