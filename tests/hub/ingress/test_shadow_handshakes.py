"""Shadow mode accepts unverified events, never an unverified handshake or confirmation.

A handshake answer can be computed with the connector's secret: Zoom answers HMAC(secret, plainToken),
and with `plainToken = v0:{ts}:{body}` that is a valid `x-zm-signature` of a forged event, which an
enforcing connector sharing the secret would accept. A confirmation is an action (the hub visits the
SNS SubscribeURL). Through the real ingress, on real NATS and Valkey: such a request that fails
verification is refused with its verification failure in shadow mode, and nothing is published or
visited; one that verifies is still answered.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web

from adapters.base import TestRequest
from tests.conftest import HubFactory, HubUnderTest, Reply
from tests.hub.ingress.handshakes import (
    SIGNED_HANDSHAKES,
    Handshake,
    connectors_yaml,
    secrets_env,
    send,
    sign,
)
from tests.hub.ingress.signing import TENANT, SecretSpec, connector_doc, specs_yaml
from tests.hub.ingress.test_ingress_keyed_providers import FORGER, KEY, SNS_HEADERS, TOPIC, certificate_pem, sns_message

pytestmark = pytest.mark.integration

SHADOW = "-shadow"


def refused(reply: Reply) -> tuple[int, str, str]:
    body = orjson.loads(reply.body)
    return reply.status, body.get("error"), body.get("reason")


def shadow_failures(hub: HubUnderTest) -> float:
    """Requests shadow connectors accepted although they failed verification (any connector, any reason)."""
    return sum(
        sample.value
        for metric in hub.context.metrics.registry.collect()
        if metric.name == "hub_shadow_verification_failures"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.mark.parametrize("handshake", SIGNED_HANDSHAKES, ids=[h.id for h in SIGNED_HANDSHAKES])
async def test_an_unverified_handshake_is_refused_in_shadow_mode(make_hub: HubFactory, handshake: Handshake) -> None:
    providers = [handshake.provider]
    hub = await make_hub(connectors_yaml(providers, suffix=SHADOW, verification="shadow"), env=secrets_env(providers))
    connector = handshake.provider + SHADOW

    unsigned = await send(hub, connector, handshake, signed=False)
    assert refused(unsigned) == (401, "bad_signature", "missing_header")  # the verification failure itself
    assert handshake.answer not in unsigned.body or not handshake.answer
    assert shadow_failures(hub) == 0  # refused, not accepted unverified

    signed = await send(hub, connector, handshake)  # a handshake that verifies is answered in shadow mode too
    assert (signed.status, signed.body) == (handshake.status, handshake.answer)
    assert await hub.event_count() == 0


# --- Zoom: the signing oracle --------------------------------------------------------------------


def zoom_headers(timestamp: str, signature: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "x-zm-request-timestamp": timestamp, "x-zm-signature": signature}


def url_validation(plain_token: str) -> bytes:
    payload = {"plainToken": plain_token}
    return orjson.dumps({"payload": payload, "event_ts": int(time.time() * 1000), "event": "endpoint.url_validation"})


async def test_zoom_in_shadow_mode_signs_no_forged_event(make_hub: HubFactory) -> None:
    """The review's attack, end to end: the shadow connector is asked to 'validate' the signed content
    of a forged event; its answer would be the forged event's signature for the enforcing connector."""
    specs = connectors_yaml(["zoom"]) + "---\n" + connectors_yaml(["zoom"], suffix=SHADOW, verification="shadow")
    hub = await make_hub(specs, env=secrets_env(["zoom"]))
    timestamp = str(int(time.time()))
    forged = orjson.dumps({"event": "meeting.deleted", "payload": {"object": {"id": "85132423451"}}, "event_ts": 1})

    answer = await hub.post(f"{TENANT}/zoom{SHADOW}", url_validation(f"v0:{timestamp}:{forged.decode()}"))
    encrypted = orjson.loads(answer.body).get("encryptedToken", "0" * 64)
    accepted = await hub.post(f"{TENANT}/zoom", forged, zoom_headers(timestamp, f"v0={encrypted}"))

    assert refused(accepted) == (401, "bad_signature", "no_match")  # the forged event is not accepted
    assert refused(answer) == (401, "bad_signature", "missing_header")
    assert await hub.event_count() == 0
    assert shadow_failures(hub) == 0

    stale = sign("zoom", TestRequest({"Content-Type": "application/json"}, url_validation("abc")), time.time() - 3600)
    replayed = await hub.post(f"{TENANT}/zoom{SHADOW}", stale.body, stale.headers)
    assert refused(replayed) == (401, "replay_window", "timestamp_too_old")  # a window failure is one too


# --- X: the CRC is unsigned by X's design, in either mode ----------------------------------------


async def test_x_crc_in_shadow_mode_signs_no_event_body(make_hub: HubFactory) -> None:
    """X signs no CRC, so the adapter answers exactly the documented shape and never a token that could
    be an event body (one with `{`); shadow mode must not loosen that."""
    specs = connectors_yaml(["x"]) + "---\n" + connectors_yaml(["x"], suffix=SHADOW, verification="shadow")
    hub = await make_hub(specs, env=secrets_env(["x"]))
    forged = orjson.dumps({"for_user_id": "2244994945", "tweet_create_events": [{"id_str": "1", "text": "forged"}]})

    async with hub.session.get(f"{hub.url}/hooks/{TENANT}/x{SHADOW}?crc_token={quote(forged)}") as response:
        answer = Reply(response.status, await response.read(), dict(response.headers))
    token = orjson.loads(answer.body).get("response_token", "sha256=" + base64.b64encode(bytes(32)).decode())
    headers = {"Content-Type": "application/json", "x-twitter-webhooks-signature": token}
    accepted = await hub.post(f"{TENANT}/x", forged, headers)

    assert refused(answer) == (401, "bad_signature", "malformed_signature")
    assert refused(accepted) == (401, "bad_signature", "no_match")
    assert await hub.event_count() == 0


# --- Amazon SNS: no confirmation visit ----------------------------------------------------------


@asynccontextmanager
async def listener(handle: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """A loopback HTTP server answering every GET with `handle`; its base URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_sns_confirmation_is_never_visited_for_an_unverified_request_in_shadow_mode(
    make_hub: HubFactory,
) -> None:
    visits: list[str] = []
    certificate = certificate_pem()

    async def serve_certificate(request: web.Request) -> web.Response:
        return web.Response(body=certificate)

    async def confirm(request: web.Request) -> web.Response:
        visits.append(request.path_qs)
        return web.Response(body=b"<ConfirmSubscriptionResponse/>")

    async with listener(serve_certificate) as key_server, listener(confirm) as sns:
        spec = SecretSpec("k1", "SHADOW_SNS_TOPIC", TOPIC)
        hosts = [key_server.removeprefix("http://"), sns.removeprefix("http://")]
        options = {"certificateHosts": hosts, "confirmSubscriptions": True}
        doc = connector_doc("sns", "aws-sns", [spec], webhook={"options": options, "verification": "shadow"})
        loopback = {"key_fetch_allowed_hosts": ("127.0.0.1",), "key_fetch_allowed_networks": ("127.0.0.0/8",)}
        hub = await make_hub(specs_yaml(doc), env={spec.env: TOPIC}, **loopback)
        cert_url = f"{key_server}/SimpleNotificationService-test.pem"

        _, forged = sns_message(cert_url, FORGER, kind="SubscriptionConfirmation", sns_base=sns)
        assert refused(await hub.post(f"{TENANT}/sns", forged, SNS_HEADERS)) == (401, "bad_signature", "no_match")
        assert visits == []
        assert await hub.event_count() == 0

        # the same confirmation signed with the certificate's key is published, then confirmed
        confirmation, signed = sns_message(cert_url, KEY, kind="SubscriptionConfirmation", sns_base=sns)
        assert (await hub.post(f"{TENANT}/sns", signed, SNS_HEADERS)).status == 202
        assert visits == [confirmation["SubscribeURL"].removeprefix(sns)]
        assert await hub.event_count() == 1
