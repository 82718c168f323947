"""What every console page shares: the control plane, the poll store, the session codec and the
templates; and the navigation, one row per page."""

from __future__ import annotations

from dataclasses import dataclass

import jinja2
from nats.js import JetStreamContext

from hub.console.session import SessionCodec
from hub.control.checks import ServingLimits
from hub.control.plane import ControlPlane
from hub.poll.store import PollStore


@dataclass(frozen=True, slots=True)
class NavItem:
    """A page in the navigation; shown to a key that has `scope` (None: every key)."""

    label: str
    path: str
    scope: str | None = None


NAV: tuple[NavItem, ...] = (
    NavItem("Connectors", "/console/connectors", "connector.catalog.read"),
    NavItem("Keys", "/console/keys", "connector.credential.manage"),
    NavItem("Audit", "/console/audit", "connector.operation.read"),
)
"""The pages, in menu order. The history pages (events, replay, dead letters, rejected) get their
rows here when their service layer lands; a row is a page that exists."""


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


def template_environment() -> jinja2.Environment:
    """The packaged templates, every value HTML-escaped unless a template says otherwise."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hub.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
