"""One delivery attempt of an invocation to its target, and the classification of its outcome.

The caller owns everything around the attempt (breakers, NAK delays, dead letters, metrics), so
a delivery failure is never raised: it comes back as `Failed`, with an `error` that is safe to
log and to store in a dead letter. It names the kind of failure and the exception type only:
never the target's headers (credentials), its URL (tokens in the query) nor the response body.

HTTP targets go through the egress guard (hub/runtime/egress.py): the Policy's `allowedHosts` judges a
target's host by name, but a tenant controls the DNS of its own domains, so the addresses a host
resolves to (and an IP literal's) must also be public unless the tenant's Policy grants those
networks (`spec.egress`). A refused target is a permanent `egress_refused` failure, dead-lettered
without a retry and without a request sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp
import nats.errors
import orjson
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError
from yarl import URL

from adapters.pollers.base import EgressRefused
from events.envelope import HEADER_PREFIX, header_value
from hub.gate.sharedflush import SharedFlush
from hub.ingest.publisher import MSG_ID_HEADER
from hub.runtime.backoff import parse_retry_after
from hub.runtime.egress import AddressGuard, GuardedResolver, Lookup, system_lookup
from schemas.connector import HttpTarget
from schemas.policy import PolicyEgress

STREAM_CACHE_S = 30.0
"""How long "which stream captures this subject" is trusted; streams rarely change."""
DRAIN_LIMIT = 64 * 1024
HTTP_CONNECTIONS = 256
"""Connections to HTTP targets, per set of egress grants (most tenants share the default one)."""
EGRESS_REFUSED = "egress_refused"
"""The `error` prefix of a target the egress guard refused."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
TRACEPARENT_HEADER = "traceparent"
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
_OURS = ("content-type", IDEMPOTENCY_HEADER.lower(), TRACEPARENT_HEADER, "content-length", "transfer-encoding", "host")
"""Target headers that may not replace ours or aiohttp's framing, besides `ce-*` (the spec schema
refuses them too; this holds for a target built some other way)."""
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+")
"""CloudEvents attribute names; anything else could not be a header name."""
_NO_EXTRA: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Delivered:
    status: int | None
    """HTTP status, None for a subject."""


@dataclass(frozen=True, slots=True)
class Failed:
    permanent: bool
    """True: never retry (3xx, 4xx other than 408/425/429, a request that cannot be built)."""
    error: str
    """Short and safe to log or dead-letter: "http 503", "timeout after 5.0s"."""
    status: int | None = None
    retry_after_s: float | None = None
    """The target's `Retry-After` on a 429 or 503."""
    trips_breaker: bool = True
    """Timeouts, connection errors, 408 and 5xx say the target is unwell; 429 and permanent ones do not."""
    throttled_by_target: bool = False
    """A 429: the caller dead-letters it as quota_exceeded once retries run out."""


Outcome = Delivered | Failed


class InvalidEnvelope(ValueError):
    """The invocation's envelope cannot become an HTTP request (never retried)."""


class SubjectDispatcher:
    """Publishes the envelope, unchanged, to a NATS subject; JetStream when a stream captures it."""

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._flush = SharedFlush(nc)
        self._streams: dict[str, tuple[str | None, float]] = {}

    async def send(
        self, subject: str, envelope: bytes, headers: dict[str, str], invocation_id: str, timeout_s: float
    ) -> Outcome:
        """Publish and wait until the server has it: a PubAck, or a flush on core NATS."""
        try:
            stream = await self._stream_for(subject, timeout_s)
            if stream is None:
                await self._nc.publish(subject, envelope, headers=headers)
                await self._flush.flush(timeout_s)
            else:
                # A retry under the same id is a duplicate JetStream drops (the first may have landed).
                await self._js.publish(
                    subject, envelope, headers=headers | {MSG_ID_HEADER: invocation_id}, timeout=timeout_s
                )
        except nats.errors.MaxPayloadError:
            return Failed(permanent=True, error="message over the server's max payload", trips_breaker=False)
        except TimeoutError:  # nats.errors.TimeoutError is one too
            self._streams.pop(subject, None)
            return Failed(permanent=False, error=f"timeout after {timeout_s}s")
        except nats.errors.Error as exc:  # no responders, no stream, connection closed, API errors
            self._streams.pop(subject, None)
            return Failed(permanent=False, error=f"nats error: {type(exc).__name__}")
        return Delivered(None)

    async def _stream_for(self, subject: str, timeout_s: float) -> str | None:
        """The stream capturing `subject`, or None; looked up at most every STREAM_CACHE_S."""
        now = time.monotonic()
        cached = self._streams.get(subject)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            async with asyncio.timeout(timeout_s):
                stream: str | None = await self._js.find_stream_name_by_subject(subject)
        except NotFoundError:
            stream = None
        self._streams[subject] = (stream, now + STREAM_CACHE_S)
        return stream


_Grants = tuple[bool, frozenset[str]]
"""A Policy's egress grants as a key: private networks allowed, and the networks listed."""


class HttpDispatcher:
    """POSTs (or PUTs, PATCHes) the event in CloudEvents HTTP binary content mode, through the
    egress guard of the tenant's Policy.

    Each distinct set of grants has its own session, resolver and connection pool: a pooled
    connection is reused without a new lookup, so one opened under a tenant's grants must never
    serve a tenant without them.
    """

    def __init__(self, *, lookup: Lookup = system_lookup) -> None:
        self._lookup = lookup
        self._sessions: dict[_Grants, tuple[AddressGuard, aiohttp.ClientSession]] = {}

    async def send(
        self,
        target: HttpTarget,
        envelope: bytes,
        invocation_id: str,
        *,
        egress: PolicyEgress,
        extra_attributes: Mapping[str, str] = _NO_EXTRA,
        traceparent: str | None = None,
    ) -> Outcome:
        """One request, to addresses `egress` (the tenant's Policy) allows; the status (or the
        exception) decides the outcome. `traceparent` (W3C) goes as the request's header of that name."""
        try:
            headers, body = binary_request(envelope, extra_attributes)
        except InvalidEnvelope as exc:
            return Failed(permanent=True, error=str(exc), trips_breaker=False)
        headers[IDEMPOTENCY_HEADER] = invocation_id
        if traceparent is not None:
            headers[TRACEPARENT_HEADER] = traceparent
        headers = _target_headers(target.headers) | headers
        timeout_s = target.timeout.total_seconds()
        guard, session = self._session(egress)
        try:
            guard.check_literal(URL(str(target.url)).raw_host or "")  # aiohttp does not resolve an IP literal
            async with session.request(
                target.method,
                str(target.url),
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                outcome = classify(response.status, response.headers.get("Retry-After"))
                await _drain(response)
                return outcome
        except EgressRefused as exc:
            return Failed(permanent=True, error=f"{EGRESS_REFUSED}: {exc.reason}", trips_breaker=False)
        except aiohttp.InvalidURL as exc:
            return Failed(permanent=True, error=f"invalid url: {type(exc).__name__}", trips_breaker=False)
        except TimeoutError:  # aiohttp's ServerTimeoutError family is one too
            return Failed(permanent=False, error=f"timeout after {timeout_s}s")
        except (aiohttp.ClientError, OSError) as exc:
            return Failed(permanent=False, error=f"{_connection_failure(exc)}: {type(exc).__name__}")
        except ValueError as exc:  # aiohttp refuses e.g. a header value with a newline in it
            return Failed(permanent=True, error=f"request not built: {type(exc).__name__}", trips_breaker=False)

    async def close(self) -> None:
        """Close every session (at stop)."""
        sessions, self._sessions = self._sessions, {}
        for _, session in sessions.values():
            await session.close()

    def _session(self, egress: PolicyEgress) -> tuple[AddressGuard, aiohttp.ClientSession]:
        """The guard and session of these grants, made on first use (aiohttp wants a running loop)."""
        grants = (egress.allowPrivateNetworks, frozenset(egress.allowedNetworks))  # no parsing per dispatch
        made = self._sessions.get(grants)
        if made is None:
            guard = AddressGuard(egress.allowedNetworks, allow_private=egress.allowPrivateNetworks)
            # aiohttp's DNS cache holds what this resolver returned: addresses checked under these grants
            connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS, resolver=GuardedResolver(guard, self._lookup))
            session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
            made = self._sessions[grants] = (guard, session)
        return made


def classify(status: int, retry_after: str | None = None) -> Outcome:
    """2xx delivered; 408, 425, 429 and 5xx transient; anything else (3xx, 4xx) permanent."""
    if 200 <= status < 300:
        return Delivered(status)
    error = f"http {status}"
    if status in _TRANSIENT_STATUSES or 500 <= status < 600:
        return Failed(
            permanent=False,
            error=error,
            status=status,
            retry_after_s=parse_retry_after(retry_after) if status in _RETRY_AFTER_STATUSES else None,
            trips_breaker=status == 408 or status >= 500,
            throttled_by_target=status == 429,
        )
    return Failed(permanent=True, error=error, status=status, trips_breaker=False)


def binary_request(envelope: bytes, extra_attributes: Mapping[str, str] = _NO_EXTRA) -> tuple[dict[str, str], bytes]:
    """The `ce-*` headers, Content-Type and body of a structured-mode envelope in binary mode."""
    try:
        raw = orjson.loads(envelope)
    except orjson.JSONDecodeError:
        raise InvalidEnvelope("invalid envelope: not JSON") from None
    if not isinstance(raw, dict):
        raise InvalidEnvelope("invalid envelope: not a JSON object")
    named = {name: value for name, value in raw.items() if name != "data"} | dict(extra_attributes)
    attributes = {name: text for name, value in named.items() if (text := _attribute_text(name, value)) is not None}
    if missing := [name for name in _REQUIRED_ATTRIBUTES if name not in attributes]:
        raise InvalidEnvelope(f"invalid envelope: no {', '.join(missing)}")
    content_type = attributes.pop("datacontenttype", None) or "application/json"
    headers = {HEADER_PREFIX + name: header_value(value) for name, value in attributes.items()}
    headers["Content-Type"] = content_type
    return headers, _body(raw, content_type)


def _attribute_text(name: str, value: Any) -> str | None:
    """An attribute's header text (CloudEvents canonical strings for booleans and integers)."""
    if not _ATTRIBUTE_NAME.fullmatch(name):
        raise InvalidEnvelope("invalid envelope: an attribute name is not [a-z0-9]+")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise InvalidEnvelope(f"invalid envelope: attribute {name} is not a string")


def _body(raw: dict[str, Any], content_type: str) -> bytes:
    """The event data as bytes: serialized as JSON, or as UTF-8 when it is text of another media type."""
    if "data" not in raw:
        return b""
    data = raw["data"]
    media_type = content_type.split(";", 1)[0].strip().lower()
    is_json = media_type in ("application/json", "text/json") or media_type.endswith("+json")
    if isinstance(data, str) and not is_json:
        return data.encode()
    return orjson.dumps(data)


def _target_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The target's own headers, less any that would replace the event's or our framing."""
    return {k: v for k, v in headers.items() if not (k.lower().startswith(HEADER_PREFIX) or k.lower() in _OURS)}


def _connection_failure(exc: BaseException) -> str:
    """A word for a transport failure; the exception text is left out (it may carry the URL)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns lookup failed"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls error"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    return "request failed"


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read and drop a bounded part of the body: a small reply frees the connection for reuse.

    The status already decided the outcome, so a slow or broken body changes nothing.
    """
    read = 0
    with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
        while read < DRAIN_LIMIT and (chunk := await response.content.readany()):
            read += len(chunk)
