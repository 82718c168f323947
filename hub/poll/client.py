"""`GuardedClient`: the hub's `PollClient`, fetching through the egress guard.

Every hop is checked before it connects (scheme, allowed host, IP literals here and resolved
addresses in `GuardedResolver`); redirects are followed by hand so each is checked like the first,
and the source's credentials go only to the original host. Failures are `SourceError`s whose text
names the kind of failure and, when a URL must be named, only `scheme://host[:port]/path`: never a
header value, a credential or a query string (it may carry a token).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from types import MappingProxyType

import aiohttp
from yarl import URL

from adapters.pollers.base import (
    EgressRefused,
    FetchRequest,
    FetchResponse,
    InvalidPayload,
    SourceRejected,
    SourceUnavailable,
)
from hub.poll.egress import EgressPolicy, GuardedResolver, Lookup, system_lookup
from hub.runtime.backoff import parse_retry_after

MAX_BODY_BYTES = 10 * 1024 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_SCHEMES = frozenset({"http", "https"})
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def safe_url(url: URL) -> str:
    """`scheme://host[:port]/path`: a URL as errors may name it (no userinfo, query or fragment)."""
    if not url.absolute:  # no host: file:///etc/passwd, or a relative reference
        return f"{url.scheme}://{url.raw_path}" if url.scheme else url.raw_path
    return f"{url.origin()}{url.raw_path or '/'}"


class GuardedClient:
    """Fetches for one poll source: allowed hosts and addresses only, bounded in time and size."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        timeout_s: float,
        auth_headers: Mapping[str, str] = _NO_HEADERS,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_redirects: int = 5,
        user_agent: str = "connector-hub",
        lookup: Lookup = system_lookup,
    ) -> None:
        self._policy = policy
        self._timeout_s = timeout_s
        self._auth_headers = dict(auth_headers)
        self._max_body_bytes = max_body_bytes
        self._max_redirects = max_redirects
        self._user_agent = user_agent
        self._lookup = lookup
        self._session: aiohttp.ClientSession | None = None

    def _client_session(self) -> aiohttp.ClientSession:
        """The session, made on first use (aiohttp wants a running loop for it)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._policy, self._lookup), use_dns_cache=False)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self._user_agent},
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        """One request and its allowed redirects, within `timeout_s` in all (the body read included)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._follow(request)
        except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
            raise SourceUnavailable(f"timeout after {self._timeout_s}s") from None
        except aiohttp.InvalidURL as exc:
            raise SourceRejected(f"invalid url: {type(exc).__name__}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SourceUnavailable(_connection_failure(exc)) from None
        except ValueError as exc:  # aiohttp refuses e.g. a header value with a newline in it
            raise SourceRejected(f"request not built: {type(exc).__name__}") from None

    async def _follow(self, request: FetchRequest) -> FetchResponse:
        session = self._client_session()
        url = URL(request.url)
        origin = url
        method, body = request.method.upper(), request.body
        headers = dict(request.headers)
        for hop in range(self._max_redirects + 1):
            try:
                self._check_url(url)
                hop_headers = self._hop_headers(headers, origin, url)
                async with session.request(
                    method, url, headers=hop_headers, data=body, allow_redirects=False, raise_for_status=False
                ) as response:
                    if response.status not in REDIRECT_STATUSES:
                        return await self._response(response)
                    location = response.headers.get("Location")
                    if not location:
                        raise SourceRejected(f"http {response.status} without Location")
            except EgressRefused as exc:
                if hop == 0:
                    raise
                raise EgressRefused(f"redirect to {safe_url(url)} refused: {exc.reason}") from None
            try:
                url = url.join(URL(location))
            except ValueError:
                raise SourceRejected(f"http {response.status} with an unreadable Location") from None
            if _becomes_get(response.status, method):
                method, body = "GET", None
                headers = {k: v for k, v in headers.items() if k.lower() not in _BODY_HEADERS}
        raise SourceRejected(f"too many redirects (more than {self._max_redirects})")

    def _hop_headers(self, headers: Mapping[str, str], origin: URL, url: URL) -> dict[str, str]:
        """The request's headers plus the source's credentials on the original host; none of either elsewhere."""
        if _same_host(origin, url):
            replaced = {name.lower() for name in self._auth_headers}
            return {k: v for k, v in headers.items() if k.lower() not in replaced} | self._auth_headers
        dropped = _CREDENTIAL_HEADERS | {name.lower() for name in self._auth_headers}
        return {k: v for k, v in headers.items() if k.lower() not in dropped}

    def _check_url(self, url: URL) -> None:
        if url.scheme not in _SCHEMES:
            raise EgressRefused(f"scheme not allowed: {url.scheme or '(none)'}")
        self._policy.check_target(url.raw_host or "")

    async def _response(self, response: aiohttp.ClientResponse) -> FetchResponse:
        status = response.status
        if 200 <= status < 300 or status == 304:
            body = await self._read(response)
            headers: dict[str, str] = {}
            for name, value in response.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            return FetchResponse(status=status, headers=headers, body=body, url=str(response.url))
        reason = f"http {status}"
        if status in _RETRY_AFTER_STATUSES:
            raise SourceUnavailable(reason, retry_after_s=parse_retry_after(response.headers.get("Retry-After")))
        if status in _TRANSIENT_STATUSES or 500 <= status < 600:
            raise SourceUnavailable(reason)
        raise SourceRejected(reason)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused once it is over `max_body_bytes` (announced or read)."""
        too_large = InvalidPayload(f"response larger than {self._max_body_bytes} bytes")
        if response.content_length is not None and response.content_length > self._max_body_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while chunk := await response.content.readany():
            size += len(chunk)
            if size > self._max_body_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)


def _same_host(origin: URL, url: URL) -> bool:
    """Credentials may go to this URL: the original host, and no downgrade from https to http."""
    same = (origin.raw_host or "").rstrip(".").lower() == (url.raw_host or "").rstrip(".").lower()
    return same and not (origin.scheme == "https" and url.scheme != "https")


def _becomes_get(status: int, method: str) -> bool:
    """303 turns any method but HEAD into GET; 301 and 302 turn POST into GET (as browsers do)."""
    return (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST")


def _connection_failure(exc: BaseException) -> str:
    """What went wrong connecting, naming the host, the port and the system's error where known."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = exc.os_error.errno
        reason = os.strerror(errno) if errno else type(exc.os_error).__name__
        return f"connection to {exc.host}:{exc.port} failed: {reason}"
    return f"connection failed: {type(exc).__name__}"
