"""Public key material that some providers' verification needs (an SNS signing certificate, a JWKS),
fetched by the hub for the adapter and cached, so a burst of deliveries costs one fetch; and the
confirmation URLs a provider asks the hub to visit (an opted-in SNS subscription).

Adapters only name the URLs (`key_urls`) after checking them against the hosts they trust; this
cache fetches over HTTPS (plain HTTP only to loopback, for tests and local mirrors), with a
timeout and a size cap, keeps each answer for `ttl_s`, and shares one in-flight fetch per URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import aiohttp

from hub.errors import KeysUnavailable

MAX_KEY_BYTES = 256 * 1024
FETCH_TIMEOUT_S = 5.0


class KeyCache:
    """URL -> bytes, fetched on first use and kept for `ttl_s`."""

    def __init__(self, *, ttl_s: float = 3600.0, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def fetch_all(self, urls: Sequence[str]) -> Mapping[str, bytes]:
        """Every URL's content, or KeysUnavailable naming the first that could not be fetched."""
        return {url: await self.get(url) for url in urls}

    async def get(self, url: str) -> bytes:
        """One URL's content, from the cache when fresh."""
        cached = self._entries.get(url)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        running = self._inflight.get(url)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[url] = future
        try:
            content = await self._fetch(url)
        except KeysUnavailable as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must log it
            raise
        finally:
            del self._inflight[url]
        future.set_result(content)
        self._entries[url] = (time.monotonic() + self._ttl_s, content)
        return content

    async def visit(self, url: str) -> None:
        """GET a URL a provider asks the hub to visit (a subscription confirmation), under the same
        rules as key material: HTTPS (or loopback), a timeout, no redirects; KeysUnavailable if not 200."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
            raise KeysUnavailable(f"a confirmation URL must be https: {parts.scheme}://{parts.hostname}")
        where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # the query holds the confirmation token
        try:
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise KeysUnavailable(f"confirming at {where} answered {response.status}")
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KeysUnavailable(f"confirming at {where} failed: {type(exc).__name__}") from None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
            raise KeysUnavailable(f"key material must come over https: {parts.scheme}://{parts.hostname}")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        where = f"{parts.scheme}://{parts.netloc}{parts.path}"
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise KeysUnavailable(f"fetching {where} answered {response.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_KEY_BYTES:
                        raise KeysUnavailable(f"{where} is larger than {MAX_KEY_BYTES} bytes")
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KeysUnavailable(f"fetching {where} failed: {type(exc).__name__}") from None
        return b"".join(chunks)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
