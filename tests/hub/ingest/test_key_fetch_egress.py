"""Key fetches cannot be turned into a scanner of the hub's network: a connector naming a loopback JWKS
is refused at load unless the operator allows the host; fetches go through the egress guard (public
addresses only, unless the operator allows networks); and a failed fetch is answered with a bare 503
`keys_unavailable` that says nothing of what the fetch met (that goes to the log)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hub.errors import ConfigError, KeysUnavailable
from hub.ingest.keycache import KeyCache
from tests.conftest import HubFactory, HubUnderTest
from tests.hub.ingress.signing import TENANT, SecretSpec, connector_doc, specs_yaml
from tests.hub.ingress.test_ingress_keyed_providers import AUDIENCE, SERVICE_ACCOUNT, jwks, pubsub_push
from tests.netdoubles import Answers, Listener, counting_listener

pytestmark = pytest.mark.integration

ALLOW_HOST = {"key_fetch_allowed_hosts": ["127.0.0.1"]}
ALLOW_LOOPBACK = ALLOW_HOST | {"key_fetch_allowed_networks": ["127.0.0.0/8"]}


@dataclass
class JwksServer:
    """A loopback HTTP server answering `/certs` with a JWKS, or with `status` and a revealing body."""

    base: str = ""
    port: int = 0
    status: int = 200
    hits: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if self.status != 200:
            return web.Response(status=self.status, text="internal admin console v1.2")
        return web.Response(body=jwks(), content_type="application/json")


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    app = web.Application()
    app.router.add_get("/certs", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.port = runner.addresses[0][1]
    server.base = f"http://127.0.0.1:{server.port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with counting_listener() as counting:
        yield counting


def pubsub_yaml(jwks_url: str) -> str:
    spec = SecretSpec("k1", "SECRET_PUBSUB_EGRESS", SERVICE_ACCOUNT)
    doc = connector_doc(
        "pubsub", "google-pubsub", [spec], webhook={"options": {"audience": AUDIENCE, "jwksUrl": jwks_url}}
    )
    return specs_yaml(doc)


async def start(make_hub: HubFactory, jwks_url: str, **settings: object) -> HubUnderTest:
    return await make_hub(pubsub_yaml(jwks_url), env={"SECRET_PUBSUB_EGRESS": SERVICE_ACCOUNT}, **settings)


async def push(hub: HubUnderTest) -> tuple[int, bytes, dict[str, str]]:
    body, headers, _ = pubsub_push()
    reply = await hub.post(f"{TENANT}/pubsub", body, headers)
    return reply.status, reply.body, reply.headers


async def test_a_loopback_jwks_url_is_refused_at_load_without_the_operator_setting(
    make_hub: HubFactory, jwks_server: JwksServer
) -> None:
    with pytest.raises(ConfigError) as refused:
        await start(make_hub, f"{jwks_server.base}/certs")

    [problem] = refused.value.problems
    assert (problem.connector, problem.field) == (f"{TENANT}/pubsub", "spec.webhook.options.jwksUrl")
    assert "HUB_KEY_FETCH_ALLOWED_HOSTS" in problem.message
    assert jwks_server.hits == []


async def test_with_the_operator_setting_the_jwks_is_fetched_and_pushes_land(
    make_hub: HubFactory, jwks_server: JwksServer
) -> None:
    hub = await start(make_hub, f"{jwks_server.base}/certs", **ALLOW_LOOPBACK)

    status, body, _ = await push(hub)

    assert status == 202, body
    assert jwks_server.hits == ["/certs"]


@pytest.mark.parametrize("answer", [418, 404, 500])
async def test_a_failed_fetch_is_a_bare_keys_unavailable_and_the_cause_is_logged(
    make_hub: HubFactory, jwks_server: JwksServer, caplog: pytest.LogCaptureFixture, answer: int
) -> None:
    jwks_server.status = answer
    hub = await start(make_hub, f"{jwks_server.base}/certs", **ALLOW_LOOPBACK)

    with caplog.at_level(logging.WARNING, logger="hub.ingest.keycache"):
        status, body, headers = await push(hub)

    assert status == 503
    assert headers["Retry-After"] == "10"
    assert_reveals_nothing(body, str(answer), str(jwks_server.port), "127.0.0.1", "/certs", "console")
    assert jwks_server.hits == ["/certs"]
    causes = [getattr(record, "error", "") for record in caplog.records if record.name == "hub.ingest.keycache"]
    assert causes == [f"fetching {jwks_server.base}/certs answered {answer}"]


async def test_a_dropped_connection_is_answered_like_any_other_failure(
    make_hub: HubFactory, listener: Listener
) -> None:
    hub = await start(make_hub, f"http://127.0.0.1:{listener.port}/certs", **ALLOW_LOOPBACK)

    status, body, _ = await push(hub)  # the listener drops the connection: the fetch fails

    assert status == 503
    assert_reveals_nothing(body, str(listener.port), "127.0.0.1", "Disconnected", "Error")
    assert listener.connections >= 1  # reached (aiohttp retries a GET once on a dropped connection)


async def test_a_host_allowed_without_its_network_is_never_connected_to(
    make_hub: HubFactory, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await start(make_hub, f"http://127.0.0.1:{listener.port}/certs", **ALLOW_HOST)

    with caplog.at_level(logging.WARNING, logger="hub.ingest.keycache"):
        status, body, _ = await push(hub)

    assert status == 503
    assert_reveals_nothing(body, str(listener.port), "127.0.0.1", "loopback")
    assert listener.connections == 0
    causes = [getattr(record, "error", "") for record in caplog.records if record.name == "hub.ingest.keycache"]
    assert causes == [
        f"fetching http://127.0.0.1:{listener.port}/certs refused: address not allowed: 127.0.0.1 (loopback)"
    ]


def assert_reveals_nothing(body: bytes, *fragments: str) -> None:
    """The answer is the generic refusal, with none of what the fetch met in it."""
    answer = body.decode()
    assert '"reason":"keys_unavailable"' in answer.replace(" ", ""), answer
    for fragment in fragments:
        assert fragment not in answer, (fragment, answer)


async def test_a_name_resolving_to_a_non_public_address_is_refused_before_connecting(listener: Listener) -> None:
    lookup = Answers({"keys.example.com": ["127.0.0.1"]})
    cache = KeyCache(lookup=lookup)
    base = f"https://keys.example.com:{listener.port}"
    try:
        with pytest.raises(KeysUnavailable) as fetched:
            await cache.get(f"{base}/certs")
        with pytest.raises(KeysUnavailable) as visited:
            await cache.visit(f"{base}/?Action=ConfirmSubscription&Token=t0ken")
    finally:
        await cache.close()

    refusal = "refused: address not allowed: 127.0.0.1 (loopback) for keys.example.com"
    assert fetched.value.cause == f"fetching {base}/certs {refusal}"
    assert visited.value.cause == f"confirming at {base}/ {refusal}"  # never the token
    assert (fetched.value.reason, visited.value.reason) == ("keys_unavailable", "keys_unavailable")
    assert lookup.asked == ["keys.example.com", "keys.example.com"]
    assert listener.connections == 0


async def test_the_operators_network_lets_a_name_through(listener: Listener) -> None:
    cache = KeyCache(lookup=Answers({"keys.example.com": ["127.0.0.1"]}), allowed_networks=["127.0.0.0/8"])
    try:
        with pytest.raises(KeysUnavailable):  # connected, then the listener dropped the TLS handshake
            await cache.get(f"https://keys.example.com:{listener.port}/certs")
    finally:
        await cache.close()
    assert listener.connections == 1
