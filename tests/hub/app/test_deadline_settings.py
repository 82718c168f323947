"""`connector-hub run` applies HUB_KEEPALIVE_TIMEOUT to its ingress listener: an idle keep-alive
connection is closed at the configured deadline, not at the default one."""

from __future__ import annotations

import asyncio
import time

from tests.hub.control.fixtures import HubStarter

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


async def test_the_keepalive_setting_reaches_the_ingress_listener(start_hub: HubStarter) -> None:
    hub = await start_hub("deadlines", {"HUB_KEEPALIVE_TIMEOUT": "1s"})
    host, port = hub.http_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(REQUEST)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert answer.startswith(b"HTTP/1.1 200")
        idle_since = time.monotonic()
        body_and_eof = await asyncio.wait_for(reader.read(), 10)  # the body, then EOF when the hub closes
        idle_s = time.monotonic() - idle_since
    finally:
        writer.close()
    assert b"ok" in body_and_eof
    assert idle_s < 10  # the default (15 s) would not have closed it within the wait
    hub.stop()
