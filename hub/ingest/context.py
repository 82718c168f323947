"""What the running hub's HTTP handlers share, as typed application state."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from hub.ingest.activity import Activity
from hub.ingest.connectors import ConnectorRegistry
from hub.ingest.ingestor import Ingestor
from hub.ingest.keycache import KeyCache
from hub.ingest.metrics import IngestMetrics
from hub.runtime.live import Live


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


HUB = web.AppKey("hub", HubContext)
