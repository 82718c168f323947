"""Requests refused for a known connector, kept on HUB_REJECTED for diagnosis and retry.

What a record holds: the refusal (error, reason, detail, status), when it was received, the sender's
address, method and URL, the headers and the body up to the connector's `captureRejected.maxBodyBytes`.
What it never holds: a header that carries a credential (`Authorization`, `Proxy-Authorization`,
`Cookie`, the `token` scheme's header, any header an adapter declares secret) and, for `url-token`,
the token in the URL. A signature header is kept: a MAC reveals no key. Nothing of a record is logged.

Recording never slows the refusal or lets a flood cost the hub: records go out as core NATS publishes
(no PubAck awaited) and each connector gets a token bucket per process; what the bucket or the record
size refuses is counted in `hub_rejected_dropped_total`. The stream keeps at most
`HUB_REJECTED_PER_CONNECTOR` records per connector (one subject each).
"""

from __future__ import annotations

import base64
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nats.errors
import orjson
from aiohttp import web
from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry, Counter

from adapters.base import InboundRequest
from adapters.errors import RequestRejected
from adapters.webhooks.token import TokenOptions
from adapters.webhooks.url_token import PARAM as URL_TOKEN_PARAM
from adapters.webhooks.url_token import UrlTokenAdapter
from events.envelope import rfc3339
from events.streams import REJECTED_RECORD_MAX_BYTES
from events.subjects import rejected_subject
from hub.errors import ClaimHeld
from hub.ingest.connectors import Connector
from hub.ingress.responses import status_of

INBOUND = web.RequestKey("inbound", InboundRequest)
"""The request as the handler read it, once its body is read (a refusal before that keeps no body)."""

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Headers never kept, whatever the provider."""

RECORDS_PER_S = 5.0
BURST = 20.0
"""Each connector's records per second per process, and the burst allowed above it."""

HEADERS_BUDGET_BYTES = 24 * 1024
"""Room for headers in a record; with the largest body preview (schemas.connector.MAX_CAPTURE_BODY_BYTES,
base64-encoded) it stays under REJECTED_RECORD_MAX_BYTES."""

RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """One refused request as kept (the stream message's JSON body)."""

    tenant: str
    connector: str
    provider: str
    error: str
    reason: str
    detail: str
    status: int
    received_at: float
    remote: str | None
    method: str
    url: str
    """The URL as received, without a url-token's token."""
    headers: list[tuple[str, str]]
    """Every header but the credential ones, in order (as far as HEADERS_BUDGET_BYTES)."""
    withheld: list[str]
    """Names of the headers not kept (credentials, or past the budget)."""
    body: bytes
    body_bytes: int | None
    """The body's full length (None: the request was refused before its body was read)."""

    @property
    def body_complete(self) -> bool:
        """Whether the kept body is the whole body (only then can the request be retried)."""
        return self.body_bytes is not None and len(self.body) == self.body_bytes

    @property
    def path(self) -> str:
        """Path and query, as kept."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def to_json(self) -> bytes:
        """The record's JSON (the body base64-encoded)."""
        data: dict[str, Any] = asdict(self)
        data["body"] = base64.b64encode(self.body).decode("ascii")
        data["v"] = RECORD_VERSION
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> RejectedRecord:
        """Decode a record; ValueError when it is not one."""
        try:
            data = orjson.loads(raw)
            data.pop("v", None)
            data["body"] = base64.b64decode(data["body"], validate=True)
            data["headers"] = [(str(k), str(v)) for k, v in data["headers"]]
            return cls(**data)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a rejected-request record: {type(exc).__name__}") from None

    def summary(self) -> dict[str, Any]:
        """What a listing shows of it (no headers, no body)."""
        return {
            "tenant": self.tenant,
            "connector": self.connector,
            "provider": self.provider,
            "error": self.error,
            "reason": self.reason,
            "status": self.status,
            "receivedAt": rfc3339(self.received_at),
            "remote": self.remote,
            "method": self.method,
            "path": self.path,
            "bodyBytes": self.body_bytes,
            "bodyKept": len(self.body),
        }


class RejectedMetrics:
    """Refused requests kept, and those not kept (rate limit, size, bus), per connector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.recorded = Counter(
            "hub_rejected_recorded",
            "Refused requests kept on HUB_REJECTED",
            ["tenant", "connector"],
            registry=registry,
        )
        self.dropped = Counter(
            "hub_rejected_dropped",
            "Refused requests not kept, by cause (rate, too_large, bus)",
            ["tenant", "connector", "cause"],
            registry=registry,
        )


def _text(value: str) -> str:
    """Header text as JSON can hold it: bytes that were not UTF-8 (kept by aiohttp as surrogates) become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def secret_headers(connector: Connector) -> frozenset[str]:
    """The lower-cased names of the headers that carry this connector's credential."""
    names = set(CREDENTIAL_HEADERS)
    names.update(h.lower() for h in connector.adapter.scheme.secret_headers)
    options = connector.adapter.options
    if isinstance(options, TokenOptions):
        names.add(options.header.lower())
    return frozenset(names)


def kept_url(connector: Connector, url: str) -> str:
    """The URL without a url-token connector's token (the URL is its credential)."""
    if not isinstance(connector.adapter, UrlTokenAdapter):
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != URL_TOKEN_PARAM]
    return urlunsplit(parts._replace(query=urlencode(query)))


def kept_headers(connector: Connector, headers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """The headers kept and the names withheld: credentials always, the rest past the budget."""
    secret = secret_headers(connector)
    kept: list[tuple[str, str]] = []
    withheld: list[str] = []
    room = HEADERS_BUDGET_BYTES
    for name, value in headers:
        size = len(name) + len(value) + 8
        if name.lower() in secret or size > room:
            withheld.append(_text(name))
            continue
        room -= size
        kept.append((_text(name), _text(value)))
    return kept, withheld


class RejectedRecorder:
    """Publishes a record of each refusal for a known connector, within each connector's rate."""

    def __init__(
        self,
        nc: NATS,
        metrics: RejectedMetrics,
        *,
        per_s: float = RECORDS_PER_S,
        burst: float = BURST,
    ) -> None:
        self._nc = nc
        self._metrics = metrics
        self._per_s = per_s
        self._burst = burst
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def _admit(self, key: tuple[str, str]) -> bool:
        """Take a token from the connector's bucket (refilled at `per_s`, at most `burst`)."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._per_s)
        admitted = tokens >= 1
        self._buckets[key] = (tokens - 1 if admitted else tokens, now)
        return admitted

    async def record(
        self, connector: Connector, request: web.Request, rejection: RequestRejected, inbound: InboundRequest | None
    ) -> None:
        """Keep a 4xx refusal (not a 409: that is a delivery in flight, not a refused request)."""
        cap = connector.capture_body_bytes
        status = status_of(rejection)
        if cap is None or not 400 <= status < 500 or isinstance(rejection, ClaimHeld):
            return
        tenant, name = connector.tenant, connector.name
        if not self._admit((tenant, name)):
            self._metrics.dropped.labels(tenant, name, "rate").inc()
            return
        headers, withheld = kept_headers(connector, list(request.headers.items()))
        record = RejectedRecord(
            tenant=tenant,
            connector=name,
            provider=connector.provider,
            error=rejection.category,
            reason=rejection.reason,
            detail=_text(rejection.detail),
            status=status,
            received_at=inbound.received_at if inbound else time.time(),
            remote=request.remote,
            method=request.method,
            url=_text(kept_url(connector, str(request.url))),
            headers=headers,
            withheld=withheld,
            body=inbound.body[:cap] if inbound else b"",
            body_bytes=len(inbound.body) if inbound else None,
        )
        payload = record.to_json()
        if len(payload) > REJECTED_RECORD_MAX_BYTES:
            self._metrics.dropped.labels(tenant, name, "too_large").inc()
            return
        try:  # a core publish: buffered, no PubAck awaited
            await self._nc.publish(rejected_subject(tenant, name), payload)
        except nats.errors.Error:
            self._metrics.dropped.labels(tenant, name, "bus").inc()
            return
        self._metrics.recorded.labels(tenant, name).inc()
