"""Malformed requests in the hub's log: a real listener (`hub.app.roles.listening`) with logging set
up as `connector-hub run` sets it up (`configure_logging`) receives raw requests aiohttp cannot
parse. Their header values (here secrets) never reach the log, and a flood writes a bounded number
of lines and no traceback."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from aiohttp import web

from hub.app.logs import MALFORMED_LOG_INTERVAL_S, configure_logging
from hub.app.roles import listening

MALFORMED = [
    # an invalid character in the token scheme's secret
    b"POST /hooks/t/c HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer SECRET-VALUE-BEARER\x01x\r\n\r\n",
    # an invalid character in a signature header
    b"POST /hooks/t/c HTTP/1.1\r\nHost: hub\r\nStripe-Signature: t=1,v1=SECRET-VALUE-STRIPE\x7f\r\n\r\n",
    # an over-long header line
    b"POST /hooks/t/c HTTP/1.1\r\nHost: hub\r\nX-Hub-Signature-256: sha256=SECRET-VALUE-GITHUB"
    + b"a" * 9000
    + b"\r\n\r\n",
    # a bad request line
    b"POST /hooks/SECRET-VALUE-PATH HTTP/1.1 extra\r\nHost: hub\r\n\r\n",
    # a header name with a space, after a good header
    b"POST /hooks/t/c HTTP/1.1\r\nHost: hub\r\nBad Name: SECRET-VALUE-NAME\r\n\r\n",
]
FLOOD = 200
ANSWER_WITHIN_S = 5.0


@pytest.fixture
def hub_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The hub's logging, as `run` configures it, into a buffer; pytest's own handlers restored after."""
    root, server = logging.getLogger(), logging.getLogger("aiohttp.server")
    saved = (root.handlers[:], root.level, server.filters[:])
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    configure_logging("INFO", "json")
    yield buffer
    root.handlers[:], server.filters[:] = saved[0], saved[2]
    root.setLevel(saved[1])


@pytest.fixture
async def hub_url() -> AsyncIterator[tuple[str, int]]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks/{tenant}/{connector}", ok)
    async with listening(app, "127.0.0.1", 0, reuse_port=False) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


async def _send_raw(address: tuple[str, int], request: bytes) -> bytes:
    """The hub's whole answer to `request` (it closes the connection after a malformed one)."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(ANSWER_WITHIN_S):
            return await reader.read()
    finally:
        writer.close()


def _records(log: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in log.getvalue().splitlines() if line.strip()]


async def test_malformed_requests_are_logged_without_their_header_values(
    hub_log: io.StringIO, hub_url: tuple[str, int]
) -> None:
    for request in MALFORMED:
        answer = await _send_raw(hub_url, request)
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431", b"HTTP/1.0 400")), answer[:80]

    text = hub_log.getvalue()
    assert "SECRET-VALUE" not in text
    assert "Traceback" not in text
    records = _records(hub_log)
    assert [r["msg"] for r in records] == ["malformed request refused"]  # the others fall in the same interval
    assert records[0]["level"] == "warning"
    assert records[0]["remote"] == "127.0.0.1"
    assert "exc" not in records[0]


async def test_a_flood_of_malformed_requests_writes_a_bounded_number_of_lines(
    hub_log: io.StringIO, hub_url: tuple[str, int]
) -> None:
    started = time.monotonic()
    for batch in range(0, FLOOD, 20):
        answers = await asyncio.gather(
            *(_send_raw(hub_url, MALFORMED[i % len(MALFORMED)]) for i in range(batch, batch + 20))
        )
        assert all(answer.startswith(b"HTTP/1.") for answer in answers)
    elapsed = time.monotonic() - started

    text = hub_log.getvalue()
    assert "SECRET-VALUE" not in text
    assert "Traceback" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 1 + int(elapsed // MALFORMED_LOG_INTERVAL_S) + 1
    assert sum(int(str(r.get("suppressed", 0))) for r in _records(hub_log)) <= FLOOD - 1
