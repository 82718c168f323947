"""What the running hub's HTTP handlers share, as typed application state."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from hub.ingest import Ingestor
from hub.keys import KeyCache
from hub.metrics import HubMetrics
from hub.registry import ConnectorRegistry


@dataclass(frozen=True, slots=True)
class HubContext:
    """Connections, connectors and metrics of one hub process."""

    registry: ConnectorRegistry
    ingestor: Ingestor
    metrics: HubMetrics
    nats: NATS
    js: JetStreamContext
    redis: Redis
    keys: KeyCache = field(default_factory=KeyCache)


HUB = web.AppKey("hub", HubContext)
