"""Providers end to end through the real `connector-hub run` (a subprocess with embedded servers):
Slack (handshake, then an event), a Twilio form callback, a SendGrid batch (one envelope per
event), a Discord PING and interaction, and a Twitch challenge. Requests are built with each
adapter's own `sign`, which the vector tests pin to the providers' published vectors and SDKs."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import nats
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.base import SigningSecret, TestRequest, WebhookAdapter
from adapters.webhooks.discord import DiscordAdapter
from adapters.webhooks.sendgrid import SendGridAdapter
from adapters.webhooks.slack import SlackAdapter
from adapters.webhooks.twilio import TwilioAdapter
from adapters.webhooks.twitch import TwitchAdapter
from hub.app.embedded import free_port
from tests.hub.cli.test_cli_run import (
    ROOT,
    START_TIMEOUT_S,
    HubProcess,
    healthy,
    hub_cli,
    hub_env,
    leftover_servers,
    stop_hub,
)
from tests.hub.cli.test_cli_run import http as http_request

pytestmark = pytest.mark.integration

TENANT = "e2e"
SLACK_SECRET = "slack-signing-" + uuid.uuid4().hex
TWILIO_TOKEN = "twilio-auth-" + uuid.uuid4().hex
TWITCH_SECRET = "twitch-secret-" + uuid.uuid4().hex
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
DISCORD_KEY = Ed25519PrivateKey.generate()


def der_b64(public: bytes) -> str:
    return base64.b64encode(public).decode()


SENDGRID_PUBLIC = der_b64(
    SENDGRID_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
)
SENDGRID_PRIVATE = SigningSecret(
    "test-pair",
    base64.b64encode(
        SENDGRID_KEY.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ),
)
DISCORD_PUBLIC = DISCORD_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
DISCORD_PRIVATE = SigningSecret(
    "test-pair",
    (
        DISCORD_KEY.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        ).hex()
        + DISCORD_PUBLIC
    ).encode(),
)
SECRETS = {
    "E2E_SLACK": SLACK_SECRET,
    "E2E_TWILIO": TWILIO_TOKEN,
    "E2E_SENDGRID": SENDGRID_PUBLIC,
    "E2E_DISCORD": DISCORD_PUBLIC,
    "E2E_TWITCH": TWITCH_SECRET,
}


def specs(port: int) -> str:
    def connector(name: str, provider: str, env: str, options: str = "") -> str:
        webhook = f"\n  webhook: {{options: {options}}}" if options else ""
        return f"""apiVersion: hub/v1
kind: Connector
metadata: {{name: {name}, tenant: {TENANT}}}
spec:
  type: webhook
  provider: {provider}
  secrets: [{{secretRef: {{source: env, name: {env}}}}}]{webhook}
"""

    twilio_url = f"http://127.0.0.1:{port}/hooks/{TENANT}/twilio"
    return "---\n".join(
        [
            connector("slack", "slack", "E2E_SLACK"),
            connector("twilio", "twilio", "E2E_TWILIO", f'{{publicUrl: "{twilio_url}"}}'),
            connector("sendgrid", "sendgrid", "E2E_SENDGRID"),
            connector("discord", "discord", "E2E_DISCORD"),
            connector("twitch", "twitch", "E2E_TWITCH"),
        ]
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    workdir = tmp_path_factory.mktemp("providers-hub")
    port = free_port()
    connectors = workdir / "connectors.yaml"
    connectors.write_text(specs(port))
    env = hub_env(workdir / "data", connectors, port, SECRETS)
    log_path = workdir / "hub.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            hub_cli("run"), env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )
    running = HubProcess(proc, workdir / "data", log_path, env, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not healthy(running.url):
            if proc.poll() is not None or time.monotonic() >= deadline:
                pytest.fail(f"hub did not become healthy; log:\n{running.log_text()}")
            time.sleep(0.05)
        running.servers = running.embedded_servers()
        yield running
    finally:
        stop_hub(running)
        left = leftover_servers(running)
        assert not left, f"embedded servers outlived the hub: {left}"


def post(hub: HubProcess, name: str, request: TestRequest, query: str = "") -> tuple[int, bytes]:
    return http_request("POST", f"{hub.url}/hooks/{TENANT}/{name}{query}", request.body, request.headers)


def sign(
    adapter: WebhookAdapter, body: Any, secret: SigningSecret, headers: dict[str, str] | None = None
) -> TestRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    request = TestRequest(headers={"Content-Type": "application/json", **(headers or {})}, body=raw)
    return adapter.sign(request, secret, time.time())


def events_of(hub: HubProcess, connector: str) -> list[dict[str, Any]]:
    """Every envelope of one connector in HUB_EVENTS (read from the hub's embedded NATS)."""
    record = json.loads((hub.data_dir / "endpoints.json").read_text())

    async def read() -> list[dict[str, Any]]:
        nc = await nats.connect(record["nats_url"])
        try:
            js = nc.jetstream()
            state = (await js.stream_info("HUB_EVENTS")).state
            seqs = range(state.first_seq, state.last_seq + 1) if state.messages else range(0)
            messages = [await js.get_msg("HUB_EVENTS", seq) for seq in seqs]
        finally:
            await nc.close()
        envelopes = [orjson.loads(m.data or b"") for m in messages if m.data]
        return [e for e in envelopes if e["hubconnector"] == connector]

    return asyncio.run(read())


def test_slack_handshake_then_event(hub: HubProcess) -> None:
    secret = SigningSecret("slack", SLACK_SECRET.encode())
    adapter = SlackAdapter.configure()
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    status, body = post(
        hub, "slack", sign(adapter, {"token": "x", "challenge": challenge, "type": "url_verification"}, secret)
    )
    assert (status, body) == (200, challenge.encode())
    assert events_of(hub, "slack") == []  # a handshake publishes nothing

    event_id = "Ev" + uuid.uuid4().hex[:10].upper()
    event = {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": event_id,
        "event_time": int(time.time()),
        "event": {"type": "app_mention", "channel": "C1", "user": "U1", "text": "hi"},
    }
    status, _ = post(hub, "slack", sign(adapter, event, secret))
    assert status == 202
    (envelope,) = events_of(hub, "slack")
    assert (envelope["id"], envelope["type"], envelope["hubverified"]) == (event_id, "slack.app_mention", "hmac-sha256")


def test_twilio_form_callback(hub: HubProcess) -> None:
    adapter = TwilioAdapter.configure({"publicUrl": f"{hub.url}/hooks/{TENANT}/twilio"})
    request = adapter.sign(adapter.sample(time.time()), SigningSecret("twilio", TWILIO_TOKEN.encode()), time.time())
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    status, body = post(hub, "twilio", request)
    assert status == 202, body
    (envelope,) = events_of(hub, "twilio")
    assert envelope["type"].startswith("twilio.message.")
    forged = TestRequest(headers={**request.headers, "X-Twilio-Signature": "A" * 27 + "="}, body=request.body)
    assert post(hub, "twilio", forged)[0] == 401


def test_sendgrid_batch_is_one_envelope_per_event(hub: HubProcess) -> None:
    now = int(time.time())
    batch = [
        {
            "email": f"user{n}@example.com",
            "event": kind,
            "sg_event_id": f"sg-{uuid.uuid4().hex}",
            "timestamp": now,
            "sg_message_id": f"msg-{n}",
        }
        for n, kind in enumerate(("processed", "delivered", "open"))
    ]
    status, body = post(hub, "sendgrid", sign(SendGridAdapter.configure(), batch, SENDGRID_PRIVATE))
    assert status == 202, body
    assert json.loads(body)["accepted"] == 3
    envelopes = events_of(hub, "sendgrid")
    assert sorted(e["id"] for e in envelopes) == sorted(item["sg_event_id"] for item in batch)
    assert sorted(e["type"] for e in envelopes) == ["sendgrid.delivered", "sendgrid.open", "sendgrid.processed"]


def test_discord_ping_then_deferred_interaction(hub: HubProcess) -> None:
    adapter = DiscordAdapter.configure()
    status, body = post(
        hub, "discord", sign(adapter, {"id": "1", "type": 1, "application_id": "2", "token": "t"}, DISCORD_PRIVATE)
    )
    assert (status, json.loads(body)) == (200, {"type": 1})
    assert events_of(hub, "discord") == []

    interaction = {
        "id": str(int(time.time() * 1000 - 1420070400000) << 22),
        "type": 2,
        "application_id": "2",
        "token": "t",
        "data": {"name": "deploy"},
    }
    status, body = post(hub, "discord", sign(adapter, interaction, DISCORD_PRIVATE))
    assert (status, json.loads(body)) == (200, {"type": 5})  # deferred: the consumer answers via the token
    (envelope,) = events_of(hub, "discord")
    assert envelope["type"] == "discord.interaction.application_command"


def test_twitch_challenge_is_answered_verbatim(hub: HubProcess) -> None:
    adapter = TwitchAdapter.configure()
    challenge = "pogchamp-kappa-" + uuid.uuid4().hex
    body = {
        "challenge": challenge,
        "subscription": {
            "id": str(uuid.uuid4()),
            "type": "channel.follow",
            "version": "2",
            "status": "webhook_callback_verification_pending",
            "condition": {"broadcaster_user_id": "12826"},
            "transport": {"method": "webhook", "callback": f"{hub.url}/hooks/{TENANT}/twitch"},
            "created_at": "2026-11-22T05:00:00Z",
        },
    }
    headers = {"Twitch-Eventsub-Message-Type": "webhook_callback_verification"}
    request = sign(adapter, body, SigningSecret("twitch", TWITCH_SECRET.encode()), headers)
    status, answer = post(hub, "twitch", request)
    assert (status, answer) == (200, challenge.encode())
    assert events_of(hub, "twitch") == []
