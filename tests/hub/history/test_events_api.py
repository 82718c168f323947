"""`GET /v1/events` and `GET /v1/connectors/{tenant}/{name}/events/{event}` on a real nats-server:
scopes, bad parameters named, and a tenant key that cannot list or show another tenant's events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import nats
import pytest
from aiohttp import web

from events.streams import ensure_streams
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.control.plane import ControlPlane
from hub.control.sealing import load_master_key
from hub.settings import Settings
from tests.hub.control.fixtures import MASTER_KEY, SIGNING_KEY, AdminApi, ControlUnderTest, Reply
from tests.hub.gate.harness import envelope, publish_event

pytestmark = pytest.mark.integration

ODD_ID = "delivery/1 with spaces?&%"


@pytest.fixture
async def history(nats_server: RunningServer) -> AsyncIterator[ControlUnderTest]:
    """The admin API with the bus connection history reads, events of tenants a and b stored, and
    keys `a`, `b`, `a-catalog` (tenant a without the read scope) and `operator`."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, Settings().stream_settings())
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    runner = web.AppRunner(build_admin_app(AdminContext(plane, "http://hub.test", SIGNING_KEY, 300, nc=nc)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    session = aiohttp.ClientSession()
    under_test = ControlUnderTest(nc, plane, AdminApi(f"http://{host}:{port}", session), {}, None)  # type: ignore[arg-type]
    under_test.keys = {
        "a": await under_test.key("a"),
        "b": await under_test.key("b"),
        "a-catalog": await under_test.key("a", ["connector.catalog.read"]),
        "operator": await under_test.key(None),
    }
    for n in range(5):
        await publish_event(js, envelope("a", "gh", "github.push", event_id=f"a{n}"))
        await publish_event(js, envelope("b", "gh", "github.push", event_id=f"b{n}"))
    await publish_event(js, envelope("b", "gh", "github.push", event_id=ODD_ID))
    try:
        yield under_test
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()


def event_path(tenant: str, event_id: str) -> str:
    return f"/v1/connectors/{tenant}/gh/events/{quote(event_id, safe='')}"


def comparable(reply: Reply) -> tuple[int, dict[str, object]]:
    body = reply.json()
    body.pop("requestId")
    return reply.status, body


async def test_listing_and_paging(history: ControlUnderTest) -> None:
    api, keys = history.api, history.keys
    reply = await api.call("GET", "/v1/events?limit=2&order=oldest", keys["a"])
    assert reply.status == 200, reply.body
    page = reply.json()
    assert [e["id"] for e in page["events"]] == ["a0", "a1"]
    assert page["events"][0]["subject"] == "hub.events.a.gh.github.push"
    seen = [e["id"] for e in page["events"]]
    while page["nextCursor"]:
        reply = await api.call("GET", f"/v1/events?limit=2&order=oldest&cursor={page['nextCursor']}", keys["a"])
        page = reply.json()
        seen += [e["id"] for e in page["events"]]
    assert seen == [f"a{n}" for n in range(5)]
    everyone = (await api.call("GET", "/v1/events?limit=500", keys["operator"])).json()["events"]
    assert len(everyone) == 11
    assert everyone[0]["id"] == ODD_ID
    by_id = await api.call("GET", f"/v1/events?tenant=b&connector=gh&id={quote(ODD_ID, safe='')}", keys["b"])
    assert [e["id"] for e in by_id.json()["events"]] == [ODD_ID]


async def test_show_with_a_percent_encoded_id(history: ControlUnderTest) -> None:
    reply = await history.api.call("GET", event_path("b", ODD_ID), history.keys["b"])
    assert reply.status == 200, reply.body
    shown = reply.json()
    assert shown["envelope"]["id"] == ODD_ID
    assert shown["provenance"]["hubtenant"] == "b"
    assert shown["headers"]["Nats-Msg-Id"] == f"b:gh:{ODD_ID}"
    assert shown["journey"] == []
    assert "not routed" in shown["journeyNote"]


async def test_a_tenant_key_cannot_list_or_show_another_tenants_events(history: ControlUnderTest) -> None:
    api, keys = history.api, history.keys
    other = await api.call("GET", event_path("b", "b1"), keys["a"])
    missing = await api.call("GET", event_path("a", "nope"), keys["a"])
    assert comparable(other) == comparable(missing) == (404, {"code": "not_found", "message": "no such connector"})
    listing = await api.call("GET", "/v1/events?tenant=b", keys["a"])
    nobody = await api.call("GET", "/v1/events?tenant=nobody", keys["a"])
    assert comparable(listing) == comparable(nobody)
    assert listing.status == 404
    own = (await api.call("GET", "/v1/events?limit=500", keys["a"])).json()["events"]
    assert {e["tenant"] for e in own} == {"a"}
    by_id = (await api.call("GET", "/v1/events?id=b1", keys["a"])).json()["events"]
    assert by_id == []
    refused = await api.call("GET", "/v1/events?subject=hub.events.b.>", keys["a"])
    assert refused.status == 400
    assert refused.json()["parameter"] == "subject"


async def test_the_read_scope_is_needed(history: ControlUnderTest) -> None:
    for path in ("/v1/events", event_path("a", "a1")):
        reply = await history.api.call("GET", path, history.keys["a-catalog"])
        assert reply.status == 403
        assert reply.json()["requiredScope"] == "connector.operation.read"
        assert (await history.api.call("GET", path)).status == 401


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("order=sideways", "order"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("cursor=garbage", "cursor"),
        ("subject=svc.other", "subject"),
        ("connector=gh", "tenant"),
    ],
)
async def test_bad_parameters_are_named(history: ControlUnderTest, query: str, parameter: str) -> None:
    reply = await history.api.call("GET", f"/v1/events?{query}", history.keys["operator"])
    assert reply.status == 400, reply.body
    assert reply.json()["code"] == "bad_request"
    assert reply.json()["parameter"] == parameter
