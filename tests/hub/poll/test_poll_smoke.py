"""Smoke: a paginated JSON source is polled into envelopes, its cursor saved, its status written."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.hub.gate.harness import until
from tests.hub.poll.fixtures import PollerFactory

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def source() -> AsyncIterator[str]:
    async def items(request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        body = {
            "items": [{"id": f"{page}-{n}", "kind": "created"} for n in range(2)],
            "next": f"/items?page={page + 1}" if page < 3 else None,
            "cursor": f"c{page}",
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/items", items)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_three_pages_become_events(make_poller: PollerFactory) -> None:
    async with source() as url:
        poller = await make_poller(f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: api, tenant: acme}}
spec:
  type: poll
  provider: acme-api
  poll:
    kind: http_json
    interval: 1h
    request: {{url: "{url}/items"}}
    items: {{path: items, id: id, type: kind, cursor: cursor}}
    pagination: {{nextLink: next}}
    egress: {{allowedNetworks: ["127.0.0.1/32"]}}
""")

        async def six() -> bool:
            return len(await poller.events()) == 6

        await until(six, 10, "six events")
        events = await poller.events()
        assert [e["id"] for e in events] == ["1-0", "1-1", "2-0", "2-1", "3-0", "3-1"]
        assert {e["type"] for e in events} == {"acme-api.created"}

        async def active() -> bool:
            return (await poller.status("acme", "api")).get("state") == "active"

        await until(active, 5, "status active")
        status = await poller.status("acme", "api")
        assert status["cursor"] == "c3"
        assert status["itemsPublished"] == "6"
