"""What a hub process is configured with: the spec files of `HUB_CONNECTORS`, checked before
anything starts, and the master key of the secret store.

A bad configuration fails fast, with every problem of every connector listed (ConfigError). At
run time the files are stored in the spec store (`apply_files`) and every role serves what the KV
watcher builds from there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from adapters.keyhosts import allow_key_hosts
from hub.control.plane import Actor, ControlPlane, InvalidSpec
from hub.control.sealing import MasterKey, MasterKeyError, load_master_key
from hub.control.specstore import RevisionConflict, SpecDocument
from hub.errors import ConfigError, Problem
from hub.gate.catalog import GateCatalog, build_catalog
from hub.ingest.connectors import ConnectorRegistry, build_registry
from hub.poll.sources import PollSource, build_sources
from hub.settings import Settings
from schemas.loader import LoadedSpecs, SpecLoadError, load_specs

log = logging.getLogger(__name__)

ROLES = ("ingress", "poller", "policy", "dispatch", "admin")
FILE_APPLY_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Configuration:
    """What the specs of `HUB_CONNECTORS` configure: the ingress's connectors and the gate's catalog."""

    registry: ConnectorRegistry
    catalog: GateCatalog
    sources: list[PollSource]
    specs: LoadedSpecs = field(default_factory=lambda: LoadedSpecs([], []))


def load_configuration(settings: Settings, roles: Sequence[str] = ROLES) -> Configuration:
    """The specs of `HUB_CONNECTORS`, or ConfigError listing every problem.

    Webhook connectors (and their secrets) are resolved only for the ingress role, poll sources
    (and their credentials) only for the poller role: a process that runs only the gate consumers
    needs the routes and policies, not the secrets.
    """
    allow_key_hosts(settings.key_fetch_allowed_hosts)  # for every connector this process validates from now on
    if settings.connectors is None:
        log.warning("HUB_CONNECTORS is unset: no connectors loaded, every webhook will be 404")
        return Configuration(ConnectorRegistry([]), build_catalog(LoadedSpecs([], [])), [])
    try:
        specs = load_specs(settings.connectors)
    except SpecLoadError as exc:
        raise ConfigError([Problem("", e.field, str(e)) for e in exc.errors]) from None
    catalog = build_catalog(specs)
    for tenant in catalog.tenants_without_policy():
        log.warning("tenant has routes but no Policy document: every route is denied", extra={"tenant": tenant})
    problems: list[Problem] = []
    registry = ConnectorRegistry([])
    sources: list[PollSource] = []
    try:
        if "ingress" in roles:
            registry = load_registry(settings, specs)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        if "poller" in roles:
            sources = build_sources(
                specs.connectors,
                publish_timeout_s=settings.publish_timeout.total_seconds(),
                disabled=settings.disabled_providers,
            )
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return Configuration(registry, catalog, sources, specs)


def load_registry(settings: Settings, specs: LoadedSpecs) -> ConnectorRegistry:
    """The enabled webhook connectors, or ConfigError listing every problem."""
    registry, notes = build_registry(
        specs.connectors,
        publish_timeout_s=settings.publish_timeout.total_seconds(),
        claim_ttl_s=settings.claim_ttl.total_seconds(),
        duplicate_window_s=settings.duplicate_window.total_seconds(),
        disabled=settings.disabled_providers,
    )
    for note in notes:
        log.warning(note)
    log.info("connectors loaded", extra={"count": len(registry), "source": str(settings.connectors)})
    return registry


def master_key(settings: Settings) -> MasterKey | None:
    """The secret store's master key from the settings, or ConfigError naming the setting."""
    try:
        value = settings.master_key.get_secret_value() if settings.master_key else None
        return load_master_key(value, settings.master_key_file)
    except MasterKeyError as exc:
        raise ConfigError([Problem("", "HUB_MASTER_KEY", str(exc))]) from None


async def apply_files(plane: ControlPlane, specs: LoadedSpecs, source: Path) -> None:
    """Store the documents of HUB_CONNECTORS (the files win over what the store has); every
    instance started with the same files agrees, so concurrent starts settle on one revision."""
    actor = Actor(key_id=f"file:{source}")
    documents: list[SpecDocument] = [*(p.policy for p in specs.policies), *(c.connector for c in specs.connectors)]
    problems: list[Problem] = []
    for document in documents:
        for attempt in range(FILE_APPLY_ATTEMPTS):
            try:
                result = await plane.apply(document, actor)
            except RevisionConflict:  # another instance applied the same files first: compare again
                if attempt + 1 == FILE_APPLY_ATTEMPTS:
                    raise
                continue
            except InvalidSpec as exc:
                problems.extend(exc.problems)
                break
            if result.action != "unchanged":
                log.info("spec stored from HUB_CONNECTORS", extra={"spec": result.label, "action": result.action})
            break
    if problems:
        raise ConfigError(problems)
