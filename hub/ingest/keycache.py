"""Public key material that some providers' verification needs (an SNS signing certificate, a JWKS),
fetched by the hub for the adapter and cached, so a burst of deliveries costs one fetch; and the
confirmation URLs a provider asks the hub to visit (an opted-in SNS subscription).

Adapters only name the URLs (`key_urls`) after checking them against the hosts they trust (the
provider's own, or hosts the operator allows: adapters/keyhosts.py). Anyone can send a request that
makes the hub fetch, so this cache fetches through the egress guard (hub/runtime/egress.py): public
addresses only, unless the operator allows networks (`HUB_KEY_FETCH_ALLOWED_NETWORKS`); over HTTPS,
plain HTTP only to a loopback host the operator allows (`HUB_KEY_FETCH_ALLOWED_HOSTS`); with a
timeout, a size cap and no redirects. It keeps each answer for `ttl_s` and shares one in-flight
fetch per URL. A failure is logged with what the fetch met and answered as a bare
`keys_unavailable`: the sender learns nothing about what the hub's fetches reach.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence

import aiohttp
from yarl import URL

from adapters.keyhosts import is_loopback, normalized_host
from adapters.pollers.base import EgressRefused
from hub.errors import KEYS_UNAVAILABLE, KeysUnavailable
from hub.runtime.egress import AddressGuard, GuardedResolver, Lookup, system_lookup
from hub.settings import Settings

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 256 * 1024
FETCH_TIMEOUT_S = 5.0
NOT_CONFIRMED = "the subscription could not be confirmed; retry later"


class KeyCache:
    """URL -> bytes, fetched on first use and kept for `ttl_s`."""

    def __init__(
        self,
        *,
        ttl_s: float = 3600.0,
        timeout_s: float = FETCH_TIMEOUT_S,
        allowed_hosts: Iterable[str] = (),
        allowed_networks: Iterable[str] = (),
        lookup: Lookup = system_lookup,
    ) -> None:
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._plain_http_hosts = frozenset(h for h in map(normalized_host, allowed_hosts) if is_loopback(h))
        self._guard = AddressGuard(allowed_networks)
        self._lookup = lookup
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyCache:
        """The cache with the operator's allowances."""
        return cls(allowed_hosts=settings.key_fetch_allowed_hosts, allowed_networks=settings.key_fetch_allowed_networks)

    async def fetch_all(self, urls: Sequence[str]) -> Mapping[str, bytes]:
        """Every URL's content, or KeysUnavailable for the first that could not be fetched."""
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
        rules as key material; KeysUnavailable unless it answers 200."""
        where = _where(url)  # the query holds the confirmation token
        try:
            self._check(url)
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise _unavailable(f"confirming at {where} answered {response.status}", NOT_CONFIRMED)
                await response.read()
        except EgressRefused as exc:
            raise _unavailable(f"confirming at {where} refused: {exc.reason}", NOT_CONFIRMED) from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _unavailable(f"confirming at {where} failed: {type(exc).__name__}", NOT_CONFIRMED) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, url: str) -> bytes:
        where = _where(url)
        try:
            self._check(url)
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise _unavailable(f"fetching {where} answered {response.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_KEY_BYTES:
                        raise _unavailable(f"{where} is larger than {MAX_KEY_BYTES} bytes")
                    chunks.append(chunk)
        except EgressRefused as exc:
            raise _unavailable(f"fetching {where} refused: {exc.reason}") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _unavailable(f"fetching {where} failed: {type(exc).__name__}") from None
        return b"".join(chunks)

    def _check(self, url: str) -> None:
        """Refuse (EgressRefused) before connecting: a scheme other than https (http only to the
        operator's loopback hosts), or an IP literal's address (aiohttp does not resolve those)."""
        parsed = URL(url)
        host = parsed.raw_host or ""
        if parsed.scheme != "https" and not (
            parsed.scheme == "http" and normalized_host(host) in self._plain_http_hosts
        ):
            raise EgressRefused(
                f"scheme not allowed: {parsed.scheme or '(none)'} (https, or http to an allowed loopback)"
            )
        self._guard.check_literal(host)

    def _client(self) -> aiohttp.ClientSession:
        """The session, made on first use (aiohttp wants a running loop); names resolve through the guard."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    resolver=GuardedResolver(self._guard, self._lookup), use_dns_cache=False
                ),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session


def _where(url: str) -> str:
    """`scheme://host[:port]/path`: the URL as the log names it (a query may hold a token)."""
    parsed = URL(url)
    return f"{parsed.origin()}{parsed.raw_path}" if parsed.absolute else parsed.raw_path


def _unavailable(cause: str, detail: str = KEYS_UNAVAILABLE) -> KeysUnavailable:
    """The refusal for a failed fetch, its cause logged here: the answer to the sender leaves it out."""
    log.warning("key material or confirmation unavailable", extra={"error": cause})
    return KeysUnavailable(cause, detail)
