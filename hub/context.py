"""What the running hub's HTTP handlers share, as typed application state."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from hub.activity import Activity
from hub.ingest import Ingestor
from hub.keys import KeyCache
from hub.live import Live
from hub.metrics import HubMetrics
from hub.registry import ConnectorRegistry


@dataclass(frozen=True, slots=True)
class HubContext:
    """Connections, connectors and metrics of one hub process."""

    registry: Live[ConnectorRegistry]
    """Replaced as a whole when a connector changes; a request reads it once."""
    ingestor: Ingestor
    metrics: HubMetrics
    nats: NATS
    js: JetStreamContext
    redis: Redis
    keys: KeyCache = field(default_factory=KeyCache)
    activity: Activity = field(default_factory=Activity)
    insecure_no_auth: bool = False
    """The admin API runs without keys: `/readyz` warns about it on every call."""


HUB = web.AppKey("hub", HubContext)
