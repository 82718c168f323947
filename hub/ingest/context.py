"""What the running hub's HTTP handlers share, as typed application state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from adapters.base import InboundRequest
from adapters.errors import RequestRejected
from hub.ingest.activity import Activity
from hub.ingest.connectors import Connector, ConnectorRegistry
from hub.ingest.ingestor import Ingestor
from hub.ingest.keycache import KeyCache
from hub.ingest.metrics import IngestMetrics
from hub.runtime.live import Live


class RefusalRecorder(Protocol):
    """Keeps a request refused for a known connector (hub/ingress/rejected.py); never slows the answer."""

    async def record(
        self, connector: Connector, request: web.Request, rejection: RequestRejected, inbound: InboundRequest | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class HubContext:
    """Connections, connectors and metrics of one hub process."""

    registry: Live[ConnectorRegistry]
    """Replaced as a whole when a connector changes; a request reads it once."""
    ingestor: Ingestor
    metrics: IngestMetrics
    nats: NATS
    js: JetStreamContext
    redis: Redis
    keys: KeyCache = field(default_factory=KeyCache)
    activity: Activity = field(default_factory=Activity)
    insecure_no_auth: bool = False
    """The admin API runs without keys: `/readyz` warns about it on every call."""
    rejected: RefusalRecorder | None = None
    """Where refused requests are kept (None: nowhere)."""


HUB = web.AppKey("hub", HubContext)
