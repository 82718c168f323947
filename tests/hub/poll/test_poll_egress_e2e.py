"""The egress guard end to end: poll sources that point at loopback, link-local or private addresses
without being allowed to, or that redirect there, end in `error` without a request reaching them
(and fast: refused before connecting, not timed out); the readiness probe does not care."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from hub.poll.egress import ADDRESS_REMEDY, HOST_REMEDY
from tests.hub.app.ops import ops_port
from tests.hub.gate.harness import sample, until
from tests.hub.poll.fixtures import PollerFactory, PollerUnderTest
from tests.hub.poll.sources import LOOPBACK, json_page, poll_connector, poll_source, redirect, specs_yaml, status

pytestmark = pytest.mark.integration

REFUSED_WITHIN_S = 3.0
"""Every refusal comes well before the sources' 10s timeout: nothing waited for a connection."""


def plain_poll(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "http_json",
        "interval": "1h",
        "timeout": "10s",
        "request": {"url": url},
        "items": {"id": "id"},
    } | overrides


async def states(poller: PollerUnderTest, *names: str) -> dict[str, dict[str, str]]:
    return {name: await poller.status("acme", name) for name in names}


async def test_non_public_sources_are_refused_without_a_request(make_poller: PollerFactory) -> None:
    async with poll_source() as source:
        source.route("/items", json_page([{"id": "a"}]))
        started = time.monotonic()
        poller = await make_poller(
            specs_yaml(
                poll_connector("loopback", plain_poll(source.url("/items"))),
                poll_connector("metadata", plain_poll("http://169.254.169.254/latest/meta-data/")),
                poll_connector("private", plain_poll("http://10.0.0.1/")),
            )
        )
        names = ("loopback", "metadata", "private")

        async def all_failed() -> bool:
            return all(s.get("state") == "error" for s in (await states(poller, *names)).values())

        await until(all_failed, REFUSED_WITHIN_S, "all three sources in error")
        assert time.monotonic() - started < REFUSED_WITHIN_S
        found = {name: s["lastError"] for name, s in (await states(poller, *names)).items()}
        assert found == {
            "loopback": f"address not allowed: 127.0.0.1 (loopback); {ADDRESS_REMEDY}",
            "metadata": f"address not allowed: 169.254.169.254 (link-local); {ADDRESS_REMEDY}",
            "private": f"address not allowed: 10.0.0.1 (private); {ADDRESS_REMEDY}",
        }
        assert source.requests == []
        for name in names:
            labels = {"tenant": "acme", "connector": name, "outcome": "failed"}
            assert sample(poller.metrics.registry, "hub_poll_runs_total", labels) == 1
        assert await poller.events() == []


async def test_redirects_to_non_public_addresses_are_refused(make_poller: PollerFactory) -> None:
    async with poll_source() as source, poll_source(host="127.0.0.2") as other:
        other.route("/items", json_page([{"id": "secret"}]))
        source.route("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
        source.route("/to-other", redirect(other.url("/items")))
        # The hosts are allowed, so the address check itself refuses (127.0.0.1/32 is the only network).
        hosts = {**LOOPBACK, "allowedHosts": ["127.0.0.1", "169.254.169.254", "127.0.0.2"]}
        started = time.monotonic()
        poller = await make_poller(
            specs_yaml(
                poll_connector("metadata", plain_poll(source.url("/to-metadata"), egress=LOOPBACK)),
                poll_connector("metadata-host", plain_poll(source.url("/to-metadata"), egress=hosts)),
                poll_connector("other", plain_poll(source.url("/to-other"), egress=hosts)),
            )
        )
        names = ("metadata", "metadata-host", "other")

        async def all_failed() -> bool:
            return all(s.get("state") == "error" for s in (await states(poller, *names)).values())

        await until(all_failed, REFUSED_WITHIN_S, "all three sources in error")
        assert time.monotonic() - started < REFUSED_WITHIN_S
        found = {name: s["lastError"] for name, s in (await states(poller, *names)).items()}
        assert found == {
            "metadata": (
                "redirect to http://169.254.169.254/latest/meta-data/ refused: "
                f"host not allowed: 169.254.169.254; {HOST_REMEDY}"
            ),
            "metadata-host": (
                "redirect to http://169.254.169.254/latest/meta-data/ refused: "
                f"address not allowed: 169.254.169.254 (link-local); {ADDRESS_REMEDY}"
            ),
            "other": (
                f"redirect to http://127.0.0.2:{other.port}/items refused: "
                f"address not allowed: 127.0.0.2 (loopback); {ADDRESS_REMEDY}"
            ),
        }
        assert sorted(r.path for r in source.requests) == ["/to-metadata", "/to-metadata", "/to-other"]
        assert other.requests == []  # the redirect target was never connected to
        assert await poller.events() == []


async def test_readyz_stays_ready_while_poll_sources_fail(make_poller: PollerFactory) -> None:
    """The probe checks NATS, Valkey and the streams; a poll source that fails is not the hub failing."""
    async with poll_source() as source:
        source.route("/items", status(500))
        poller = await make_poller(
            specs_yaml(
                poll_connector("down", plain_poll(source.url("/items"), egress=LOOPBACK)),
                poll_connector("refused", plain_poll("http://10.0.0.1/")),
            )
        )

        async def both_failed() -> bool:
            found = await states(poller, "down", "refused")
            return found["down"].get("lastError") == "http 500" and found["refused"].get("state") == "error"

        await until(both_failed, 5, "both sources failing")
        assert poller.context is not None
        async with (
            ops_port(poller.context) as ops,
            aiohttp.ClientSession() as session,
            session.get(f"{ops}/readyz") as response,
        ):
            assert response.status == 200
            assert await response.json() == {
                "ready": True,
                "checks": {"nats": "ok", "valkey": "ok", "streams": "ok"},
            }
