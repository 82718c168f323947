"""The key cache: providers' public keys fetched once, shared, cached, refused over plain HTTP.

The server here listens on loopback, which the operator must allow (hosts and network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from hub.errors import KeysUnavailable
from hub.ingest.keycache import MAX_KEY_BYTES, KeyCache

pytestmark = pytest.mark.integration

LOOPBACK = {"allowed_hosts": ["127.0.0.1"], "allowed_networks": ["127.0.0.0/8"]}


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []
    release = asyncio.Event()

    async def cert(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/slow":
            await release.wait()
        if request.path == "/missing":
            return web.Response(status=404)
        if request.path == "/huge":
            return web.Response(body=b"x" * (MAX_KEY_BYTES + 1))
        return web.Response(body=b"-----BEGIN CERTIFICATE-----" + request.path.encode())

    app = web.Application()
    app.router.add_get("/{name}", cert)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    release.set()
    try:
        yield f"http://{host}:{port}", hits
    finally:
        await runner.cleanup()


async def test_fetched_once_then_cached_and_concurrent_fetches_shared(server: tuple[str, list[str]]) -> None:
    base, hits = server
    cache = KeyCache(**LOOPBACK)
    try:
        results = await asyncio.gather(*(cache.get(f"{base}/slow") for _ in range(5)))
        assert set(results) == {b"-----BEGIN CERTIFICATE-----/slow"}
        assert await cache.fetch_all([f"{base}/slow", f"{base}/other"]) == {
            f"{base}/slow": b"-----BEGIN CERTIFICATE-----/slow",
            f"{base}/other": b"-----BEGIN CERTIFICATE-----/other",
        }
        assert hits == ["/slow", "/other"]  # one fetch for six asks of /slow
    finally:
        await cache.close()


async def test_expired_entries_are_fetched_again(server: tuple[str, list[str]]) -> None:
    base, hits = server
    cache = KeyCache(ttl_s=0, **LOOPBACK)
    try:
        await cache.get(f"{base}/a")
        await cache.get(f"{base}/a")
        assert hits == ["/a", "/a"]
    finally:
        await cache.close()


@pytest.mark.parametrize(("path", "reason"), [("/missing", "answered 404"), ("/huge", "larger than")])
async def test_failures_are_keys_unavailable(server: tuple[str, list[str]], path: str, reason: str) -> None:
    base, _ = server
    cache = KeyCache(**LOOPBACK)
    try:
        with pytest.raises(KeysUnavailable) as caught:
            await cache.get(base + path)
        assert caught.value.reason == "keys_unavailable"
        assert reason in caught.value.cause
    finally:
        await cache.close()


async def test_plain_http_is_refused_off_loopback() -> None:
    cache = KeyCache(**LOOPBACK)
    with pytest.raises(KeysUnavailable) as caught:
        await cache.get("http://sns.us-east-1.amazonaws.com/cert.pem")
    assert "scheme not allowed: http" in caught.value.cause
    await cache.close()
