"""Redaction of polled items: the rules apply to each item before it is published; the id, type and
the item's hash come from the item as the source sent it."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.conftest import wait_for
from tests.hub.gate.harness import stream_messages
from tests.hub.poll.fixtures import EVENTS, PollerFactory

pytestmark = pytest.mark.integration

ITEMS = [
    {"id": f"item-{n}", "kind": "order", "customer": {"email": f"buyer{n}.hidden@example.com"}, "card": "4242-hidden"}
    for n in range(3)
]


@contextlib.asynccontextmanager
async def source() -> AsyncIterator[str]:
    async def items(request: web.Request) -> web.Response:
        return web.json_response({"items": ITEMS})

    app = web.Application()
    app.router.add_get("/items", items)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def spec(url: str) -> str:
    return f"""
apiVersion: hub/v1
kind: Connector
metadata: {{name: orders, tenant: acme}}
spec:
  type: poll
  provider: shop
  poll:
    kind: http_json
    interval: 1h
    request: {{url: "{url}/items"}}
    items: {{path: items, id: id, type: kind}}
    egress: {{allowedNetworks: ["127.0.0.1/32"]}}
  redact:
    - {{path: /customer/email, action: mask}}
    - {{path: /card, action: drop}}
"""


async def test_polled_items_are_redacted_before_they_are_published(make_poller: PollerFactory) -> None:
    async with source() as url:
        poller = await make_poller(spec(url))

        async def three() -> bool:
            return len(await poller.events()) == 3

        await wait_for(three, what="three polled items")
        raw = [m.data or b"" for m in await stream_messages(poller.js, EVENTS)]
    for message in raw:
        assert b"hidden" not in message
    envelopes: list[dict[str, Any]] = [orjson.loads(m) for m in raw]
    by_id = {e["id"]: e for e in envelopes}
    assert sorted(by_id) == ["item-0", "item-1", "item-2"]
    for item in ITEMS:
        envelope = by_id[item["id"]]
        assert envelope["type"] == "shop.order"
        assert envelope["data"] == {"id": item["id"], "kind": "order", "customer": {"email": "[redacted]"}}
        assert orjson.loads(envelope["hubredactions"]) == {"count": 2, "paths": ["/customer/email", "/card"]}
        assert envelope["hubbodysha256"] == hashlib.sha256(orjson.dumps(item)).hexdigest()  # the item as read
