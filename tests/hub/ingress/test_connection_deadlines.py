"""Connection deadlines on a real listener (`hub.app.roles.listening`, as `run` serves the ingress):
idle keep-alive connections and clients trickling their headers are closed at the keep-alive
deadline, a body that does not arrive in time is refused (400 body_timeout), and a legitimate
sender is answered meanwhile. Short deadlines (1 s) keep the test quick; every wait is bounded."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from adapters.errors import RequestRejected
from hub.app.roles import listening
from hub.ingress.body import read_capped_body
from hub.ingress.deadlines import Deadlines
from hub.ingress.responses import rejection_response

DEADLINES = Deadlines(keepalive_s=1.0, body_s=1.0)
IDLE_CONNECTIONS = 500
OPEN_BATCH = 100
CLOSED_WITHIN_S = 10.0
"""Every idle connection sees EOF this long after its request at most (the deadline is 1 s)."""
LEGIT_WITHIN_S = 2.0
TRICKLE_INTERVAL_S = 0.25
TRICKLE_MAX_BYTES = 40
"""10 s of trickling at most: a client still connected after that was not cut off."""
GET = b"GET /ok HTTP/1.1\r\nHost: hub\r\n\r\n"


@pytest.fixture
async def address() -> AsyncIterator[tuple[str, int]]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def body(request: web.Request) -> web.Response:
        try:
            return web.Response(text=str(len(await read_capped_body(request, 1024))))
        except RequestRejected as error:
            return rejection_response(error)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_post("/body", body)
    async with listening(app, "127.0.0.1", 0, reuse_port=False, deadlines=DEADLINES) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


async def _idle_after_one_request(address: tuple[str, int]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(GET)
    async with asyncio.timeout(CLOSED_WITHIN_S):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Connection: close" not in head
        await reader.readexactly(2)  # "ok"
    return reader, writer


async def _eof_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from `started` until the hub closed the connection (nothing else may arrive)."""
    async with asyncio.timeout(CLOSED_WITHIN_S):
        assert await reader.read() == b""
    return time.monotonic() - started


async def _legit_latencies(session: aiohttp.ClientSession, url: str, until: asyncio.Event, most: int) -> list[float]:
    latencies: list[float] = []
    while not until.is_set() and len(latencies) < most:
        started = time.monotonic()
        async with asyncio.timeout(LEGIT_WITHIN_S), session.post(url, data=b"{}") as response:
            assert response.status == 200
            assert await response.text() == "2"
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.005)  # a steady sender's pace, not a wait for a condition
    return latencies


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else latencies[0]


async def test_idle_keepalive_connections_are_closed_while_a_legitimate_sender_is_answered(
    address: tuple[str, int],
) -> None:
    url = f"http://{address[0]}:{address[1]}/body"
    async with aiohttp.ClientSession() as session:
        unloaded = await _legit_latencies(session, url, asyncio.Event(), most=200)

        done = asyncio.Event()
        legit = asyncio.create_task(_legit_latencies(session, url, done, most=5000))
        connections = []
        for _ in range(IDLE_CONNECTIONS // OPEN_BATCH):
            connections += await asyncio.gather(*(_idle_after_one_request(address) for _ in range(OPEN_BATCH)))
        opened = time.monotonic()
        try:
            closed_after = await asyncio.gather(*(_eof_after(reader, opened) for reader, _ in connections))
        finally:
            for _, writer in connections:
                writer.close()
            done.set()
        loaded = await legit

    assert len(closed_after) == IDLE_CONNECTIONS
    assert max(closed_after) < CLOSED_WITHIN_S
    assert max(loaded) < LEGIT_WITHIN_S
    print(
        f"\n{IDLE_CONNECTIONS} idle connections all closed within {max(closed_after):.2f}s of the last one opening; "
        f"legitimate p99 {_p99(unloaded) * 1000:.1f} ms unloaded ({len(unloaded)} requests), "
        f"{_p99(loaded) * 1000:.1f} ms while they were opened and closed ({len(loaded)} requests)"
    )


async def test_a_client_trickling_its_headers_is_cut_off(address: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()
    head = b"POST /body HTTP/1.1\r\nHost: hub\r\nContent-Length: 2\r\nX-Slow: " + b"a" * TRICKLE_MAX_BYTES
    try:
        for byte in range(TRICKLE_MAX_BYTES):
            writer.write(head[byte : byte + 1])
            try:
                answer = await asyncio.wait_for(reader.read(), TRICKLE_INTERVAL_S)
            except TimeoutError:
                continue  # still connected: the next byte
            assert answer == b""  # closed, without an answer
            break
        else:
            pytest.fail(f"still connected after trickling {TRICKLE_MAX_BYTES} bytes")
    finally:
        writer.close()
    assert time.monotonic() - started < DEADLINES.keepalive_s + 2


async def test_a_body_that_does_not_arrive_in_time_is_refused(address: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*address)
    started = time.monotonic()
    try:
        writer.write(b"POST /body HTTP/1.1\r\nHost: hub\r\nContent-Length: 100\r\n\r\n{")
        async with asyncio.timeout(DEADLINES.body_s + 5):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:])
            body = orjson.loads(await reader.readexactly(length))
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 400")
    assert body["reason"] == "body_timeout"
    assert DEADLINES.body_s <= time.monotonic() - started < DEADLINES.body_s + 2
