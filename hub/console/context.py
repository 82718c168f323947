"""What every console page shares: the control plane, the poll store, the session codec and the
templates; and the navigation, one row per page."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import jinja2
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from redis.asyncio import Redis

from hub.console.session import SessionCodec
from hub.control.checks import ServingLimits
from hub.control.plane import ControlPlane
from hub.control.rates import RateStore
from hub.gate.breaker import BreakerState
from hub.jobs.store import OpenedJobStore
from hub.poll.store import PollStore
from hub.settings import Settings


@dataclass(frozen=True, slots=True)
class NavItem:
    """A page in the navigation; shown to a key that has `scope` (None: every key)."""

    label: str
    path: str
    scope: str | None = None
    operators_only: bool = False
    """A page of every tenant's records (a tenant key is refused it)."""


NAV: tuple[NavItem, ...] = (
    NavItem("Connectors", "/console/connectors", "connector.catalog.read"),
    NavItem("Events", "/console/events", "connector.operation.read"),
    NavItem("Replay", "/console/replay", "connector.operation.invoke"),
    NavItem("Dead letters", "/console/deadletters", "connector.operation.read"),
    NavItem("Rejected", "/console/rejected", "connector.operation.read"),
    NavItem("Deleted", "/console/deleted", "connector.instance.manage"),
    NavItem("Retention", "/console/retention", "connector.operation.read", operators_only=True),
    NavItem("Keys", "/console/keys", "connector.credential.manage"),
    NavItem("Audit", "/console/audit", "connector.operation.read"),
)
"""The pages, in menu order; a row is a page that exists."""


@dataclass(frozen=True, slots=True)
class ConsoleContext:
    """The console's share of the hub."""

    plane: ControlPlane
    js: JetStreamContext
    """Reads HUB_AUDIT for the audit page."""
    poll_store: PollStore | None
    ingress_base_url: str
    limits: ServingLimits
    codec: SessionCodec
    templates: jinja2.Environment
    nc: NATS
    """Reads the history streams (dead letters, kept requests); redrives and retries publish on it."""
    settings: Settings
    """What a retry's ingest path and the connector it rebuilds need (timeouts, master key)."""
    redis: Redis | None = None
    """The dedupe store a retry claims in (None: retry is unavailable)."""
    rates: RateStore | None = None
    """Each connector's per-minute counts (None: the connectors page shows no rates)."""
    jobs: OpenedJobStore = field(default_factory=OpenedJobStore)
    """The jobs bucket, opened at the first page that needs it (on `nc`)."""
    breakers: Callable[[], Mapping[str, BreakerState] | None] = lambda: None
    """This process's circuit breakers by target key (None: it dispatches nothing). Breakers are per
    process: the connector page says whose it shows."""


def template_environment() -> jinja2.Environment:
    """The packaged templates, every value HTML-escaped unless a template says otherwise."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hub.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
