"""The admin port's operational routes (`/readyz`, `/metrics`) for a hub the tests run in-process:
`make_hub` serves the public ingress port only, as `connector-hub run` does on that port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from hub.ingest.context import HubContext
from hub.ingress.health import add_ops_routes
from tests.conftest import HubUnderTest, Reply


@asynccontextmanager
async def ops_port(context: HubContext) -> AsyncIterator[str]:
    """Serve the hub's `/readyz` and `/metrics` on a loopback port, as the runner adds them to the admin
    port's application; yields the base URL and stops the server afterwards."""
    app = web.Application()
    add_ops_routes(app, context)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def ops_get(hub: HubUnderTest, path: str) -> Reply:
    """GET `path` from the hub's operational routes (on the admin port, never the ingress's)."""
    async with (
        ops_port(hub.context) as base,
        hub.session.get(f"{base}{path}", allow_redirects=False) as response,
    ):
        return Reply(response.status, await response.read(), dict(response.headers))
