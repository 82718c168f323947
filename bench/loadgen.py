"""The ingest bench's two load generators: C connections share one counter over N pre-signed requests.

- `lean` (the default): HTTP/1.1 keep-alive over asyncio protocols on uvloop. Every request is
  built to bytes before the phase starts; an answer is parsed only as far as its status line and
  `Content-Length`. It costs about 0.04 ms of CPU per request, close to what `wrk -t1` costs, so
  the load generator takes little of the two cores from the servers it measures, and it can
  saturate the trivial handler.
- `aiohttp`: aiohttp's client, about 0.2 ms of CPU per request. It shares the cores with the
  servers, which slows the baselines more than the hub; kept to compare with earlier figures.

Both count only 2xx answers as accepted, record the latency of each, stop at the time cap and
count what failed by status or exception name. The lean client expects what the servers under
test send: HTTP/1.1 answers with `Content-Length` (aiohttp's `web.Response`), never chunked.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import aiohttp

REQUEST_TIMEOUT_S = 30.0
_HEADER_END = b"\r\n\r\n"
_HOP_BY_HOP = frozenset({"host", "content-length", "connection", "transfer-encoding"})

Request = tuple[str, Mapping[str, str], bytes]
"""(path, headers, body) of one POST."""


@dataclass
class LoadResult:
    """What one load run saw."""

    sent: int = 0
    accepted: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def answered(self, status: int, started: float) -> None:
        if 200 <= status < 300:
            self.accepted += 1
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            self.failures[str(status)] += 1


async def run_load(
    client: str, base_url: str, requests: Sequence[Request], concurrency: int, cap_s: float
) -> LoadResult:
    """POST every request with `client` ("lean" or "aiohttp"), until done or `cap_s` passed."""
    runner = lean_load if client == "lean" else aiohttp_load
    async with asyncio.timeout(cap_s + REQUEST_TIMEOUT_S + 5):  # the workers stop at the cap; a backstop
        result = await runner(base_url, requests, concurrency, cap_s)
    result.latencies_ms.sort()
    return result


async def aiohttp_load(base_url: str, requests: Sequence[Request], concurrency: int, cap_s: float) -> LoadResult:
    result = LoadResult()
    next_index = 0
    deadline = time.perf_counter() + cap_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(requests) and time.perf_counter() < deadline:
            path, headers, body = requests[next_index]
            next_index += 1
            result.sent += 1
            started = time.perf_counter()
            try:
                async with session.post(base_url + path, data=body, headers=headers) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failures[type(exc).__name__] += 1
                continue
            result.answered(response.status, started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    return result


def encode_request(host: str, request: Request) -> bytes:
    """One POST as the bytes on the wire."""
    path, headers, body = request
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in _HOP_BY_HOP]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Requests:
    """The shared counter over the encoded requests, and the run's result."""

    def __init__(self, encoded: list[bytes], cap_s: float) -> None:
        self.encoded = encoded
        self.next_index = 0
        self.deadline = time.perf_counter() + cap_s
        self.result = LoadResult()

    def take(self) -> bytes | None:
        if self.next_index >= len(self.encoded) or time.perf_counter() >= self.deadline:
            return None
        self.next_index += 1
        self.result.sent += 1
        return self.encoded[self.next_index - 1]


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, read its answer, send the next."""

    def __init__(self, requests: _Requests, finished: asyncio.Future[None]) -> None:
        self._requests = requests
        self._finished = finished
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._body_left: int | None = None  # None while the head of the answer is still coming
        self._status = 0
        self._started = 0.0
        self._waiting = False  # a request is out and its answer not complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self._send_next()

    def _send_next(self) -> None:
        assert self._transport is not None
        request = self._requests.take()
        if request is None:
            self._transport.close()
            return
        self._started = time.perf_counter()
        self._waiting = True
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._body_left is None:
                end = self._buffer.find(_HEADER_END)
                if end < 0:
                    return
                self._read_head(bytes(self._buffer[:end]))
                del self._buffer[: end + len(_HEADER_END)]
            assert self._body_left is not None
            if len(self._buffer) < self._body_left:
                return
            del self._buffer[: self._body_left]
            self._body_left = None
            self._waiting = False
            self._requests.result.answered(self._status, self._started)
            self._send_next()

    def _read_head(self, head: bytes) -> None:
        status_line, *header_lines = head.split(b"\r\n")
        self._status = int(status_line.split(b" ", 2)[1])
        self._body_left = 0
        for line in header_lines:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                self._body_left = int(value)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting:  # the server closed before it answered
            self._requests.result.failures["ConnectionLost"] += 1
        if not self._finished.done():
            self._finished.set_result(None)


async def lean_load(base_url: str, requests: Sequence[Request], concurrency: int, cap_s: float) -> LoadResult:
    url = urlsplit(base_url)
    assert url.hostname is not None
    assert url.port is not None
    encoded = [encode_request(url.netloc, request) for request in requests]
    started = time.perf_counter()
    shared = _Requests(encoded, cap_s)
    loop = asyncio.get_running_loop()
    finished: list[asyncio.Future[None]] = []
    for _ in range(concurrency):
        done: asyncio.Future[None] = loop.create_future()
        finished.append(done)
        await loop.create_connection(functools.partial(_Connection, shared, done), url.hostname, url.port)
    await asyncio.gather(*finished)
    shared.result.elapsed_s = time.perf_counter() - started
    return shared.result
