"""The gate's HTTP dispatch goes through the egress guard: a target whose allowed host resolves to a
non-public address (a tenant controls its own domain's DNS), or an IP-literal target on one, is
refused without a request and dead-lettered at once as a permanent `egress_refused` failure; the
tenant's Policy granting that network lets it through.

Names resolve with an injected lookup (`deployer.acme.test` -> 127.0.0.1); every target is loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from events.streams import ensure_streams
from hub.app.config import load_configuration
from hub.app.connections import connect_nats, connect_redis
from hub.app.embedded import RunningServer
from hub.app.metrics import HubMetrics
from hub.gate.consumers import start_gate
from hub.runtime.live import Live
from hub.settings import Settings
from tests.hub.gate.fixtures import GateUnderTest
from tests.hub.gate.harness import (
    HttpTarget,
    dead_letter_messages,
    envelope,
    gate_idle,
    http_target,
    publish_event,
    sample,
    until,
)
from tests.netdoubles import Answers

pytestmark = pytest.mark.integration

NAME = "deployer.acme.test"
LABELS = {"tenant": "acme", "connector": "gh", "route": "deploy"}


def specs(url: str, egress: str | None) -> str:
    """`acme/gh` routing pushes to `url` (retried fast), under a Policy allowing its host and, when
    given, the `egress` grants."""
    grants = f"\n  egress: {egress}" if egress else ""
    return f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: gh, tenant: acme}}
spec:
  type: webhook
  provider: github
  secrets: [{{secretRef: {{source: env, name: UNUSED}}}}]
  routes:
    - name: deploy
      match: {{types: ["github.push"]}}
      target: {{http: {{url: "{url}/hook", timeout: 2s}}}}
      retry: {{maxAttempts: 5, initial: 50ms, max: 100ms, jitter: false}}
---
apiVersion: hub/v1
kind: Policy
metadata: {{name: default, tenant: acme}}
spec:
  allowedHosts: ["{NAME}", "127.0.0.1"]{grants}
  rules:
    - {{name: all, effect: allow}}
"""


GateStarter = Callable[[str], Awaitable[GateUnderTest]]


@pytest.fixture
def lookup() -> Answers:
    return Answers({NAME: ["127.0.0.1"]})


@pytest.fixture
async def start(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path, lookup: Answers
) -> AsyncIterator[GateStarter]:
    """The gate's consumers in-process for a specs text, resolving names with `lookup`."""
    started: list[GateUnderTest] = []

    async def starting(specs_yaml: str) -> GateUnderTest:
        spec_file = tmp_path / "specs.yaml"
        spec_file.write_text(specs_yaml)
        settings = Settings(
            nats_url=nats_server.url, redis_url=valkey_server.url, connectors=spec_file, data_dir=tmp_path
        )
        catalog = load_configuration(settings, roles=("policy", "dispatch")).catalog
        nc = await connect_nats(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js, settings.stream_settings())
        redis = connect_redis(valkey_server.url, settings.store_timeout.total_seconds())
        metrics = HubMetrics()
        gate = await start_gate(
            nats_server.url, nc, redis, Live(catalog), metrics.gate, policy=True, dispatch=True, lookup=lookup
        )
        started.append(GateUnderTest(nc, js, redis, gate, metrics, nats_server.url, valkey_server.url, spec_file))
        return started[-1]

    yield starting
    for under_test in reversed(started):
        await under_test.gate.stop()
        await under_test.nc.close()
        await under_test.redis.aclose()


def url_of(target: HttpTarget, by_name: bool) -> str:
    return target.url.replace("127.0.0.1", NAME) if by_name else target.url


@pytest.mark.parametrize(
    ("by_name", "refusal"),
    [
        (True, f"egress_refused: address not allowed: 127.0.0.1 (loopback) for {NAME}"),
        (False, "egress_refused: address not allowed: 127.0.0.1 (loopback)"),
    ],
    ids=["name-resolving-to-loopback", "ip-literal"],
)
async def test_a_loopback_target_is_refused_and_dead_lettered_at_once(
    start: GateStarter, lookup: Answers, by_name: bool, refusal: str
) -> None:
    async with http_target() as target:
        gate = await start(specs(url_of(target, by_name), egress=None))
        event = envelope("acme", "gh", "github.push")
        await publish_event(gate.js, event)

        async def dead_lettered() -> bool:
            return bool(await dead_letter_messages(gate.js))

        await until(dead_lettered, 10, "a dead letter")
        await until(lambda: gate_idle(gate.js), 10, "both gate consumers idle")

        ((subject, letter),) = await dead_letter_messages(gate.js)
        assert subject == "hub.dlq.acme.gh.deploy"
        assert (letter["class"], letter["error"], letter["attempts"]) == ("permanent", refusal, 1)
        assert target.requests == []
        assert lookup.asked == ([NAME] if by_name else [])  # an IP literal is checked without a lookup
        assert sample(gate.metrics.registry, "hub_dispatch_retries_total", LABELS) == 0


@pytest.mark.parametrize("egress", ["{allowedNetworks: [127.0.0.0/8]}", "{allowPrivateNetworks: true}"])
@pytest.mark.parametrize("by_name", [True, False], ids=["name-resolving-to-loopback", "ip-literal"])
async def test_the_policy_granting_the_network_lets_it_through(start: GateStarter, egress: str, by_name: bool) -> None:
    async with http_target() as target:
        gate = await start(specs(url_of(target, by_name), egress=egress))
        event = envelope("acme", "gh", "github.push")
        await publish_event(gate.js, event)

        await until(lambda: len(target.requests) == 1, 10, "the delivery")
        await until(lambda: gate_idle(gate.js), 10, "both gate consumers idle")

        [(headers, _)] = target.requests
        assert headers["ce-id"] == event.id
        assert await dead_letter_messages(gate.js) == []
        assert sample(gate.metrics.registry, "hub_invocations_total", LABELS | {"outcome": "delivered"}) == 1
