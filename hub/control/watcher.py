"""Keeps one hub process's configuration in step with the specs and secrets buckets.

Every instance watches both buckets. A change (a connector created, updated, disabled or deleted,
a Policy changed, a stored secret given a new version or wiped) rebuilds only the connectors it
touches, then swaps the live registry, gate catalog and poll sources: requests and messages already
under way finish with the version they started with. What this process builds depends on its roles:
webhook connectors (with their secrets) for the ingress, poll sources for the poller, and the gate
catalog (routes and policies, no secrets) for the gate consumers.

A connector that cannot be built here (a secret this instance cannot resolve, say) is not served
(404) and its status says why; the others are unaffected. A new revision of a connector already
served that cannot be built here leaves the last good revision serving, `degraded` with the reason;
a delete, a disable, a secret wiped and the tenant boundary always take effect. A connector a tenant's key wrote is held
to the tenant boundary against the tenant's current Policy each time it is built, so a Policy
change rebuilds the tenant's connectors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from hub.control.boundary import tenant_boundary_problems
from hub.control.buckets import current_entries
from hub.control.slo import objectives_of
from hub.control.specstore import StoredSpecError, parse_stored
from hub.control.status import StatusChange
from hub.errors import ConfigError
from hub.gate.catalog import GateCatalog, catalog_of
from hub.ingest.connectors import Connector, ConnectorRegistry, build_connector
from hub.ingest.secrets import SecretResolver, StoreLookup, store_secrets_of
from hub.poll.sources import PollSource, build_source
from hub.runtime.live import Live
from hub.settings import Settings
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument

log = logging.getLogger(__name__)

Key = tuple[str, str]
StatusSink = Callable[[str, str, StatusChange], None]


class SecretFeed(StoreLookup, Protocol):
    """A store lookup that is also fed the secrets bucket's changes (hub.control.secretstore.SecretCache)."""

    def apply(self, key: str, value: bytes | None) -> tuple[str, str] | None:
        """Take one KV change; the (tenant, name) it changed, if it is a secret's key."""
        ...


@dataclass(frozen=True, slots=True)
class LiveConfiguration:
    """What the roles of a process read, each replaced as a whole on a change."""

    registry: Live[ConnectorRegistry]
    catalog: Live[GateCatalog]
    sources: Live[tuple[PollSource, ...]]

    @classmethod
    def empty(cls) -> LiveConfiguration:
        """Nothing configured yet."""
        return cls(Live(ConnectorRegistry([])), Live(catalog_of([], [])), Live(()))


class ConfigWatcher:
    """Watches the buckets and rebuilds what changed; `live` is what the roles read."""

    def __init__(
        self,
        settings: Settings,
        roles: Sequence[str],
        specs: KeyValue,
        secrets: KeyValue,
        feed: SecretFeed,
        *,
        live: LiveConfiguration | None = None,
        status: StatusSink | None = None,
        on_sources: Callable[[Sequence[PollSource]], None] | None = None,
    ) -> None:
        self.live = live or LiveConfiguration.empty()
        self._settings = settings
        self._ingress = "ingress" in roles
        self._poller = "poller" in roles
        self._specs_kv = specs
        self._secrets_kv = secrets
        self._feed = feed
        self._resolver = SecretResolver(feed)
        self._status = status
        self._on_sources = on_sources
        self._documents: dict[Key, tuple[ConnectorDocument, int]] = {}
        self._tenant_authored: set[Key] = set()
        self._policies: dict[str, PolicyDocument] = {}
        self._webhooks: dict[Key, Connector] = {}
        self._polls: dict[Key, PollSource] = {}
        self._served_revisions: dict[Key, int] = {}
        """The revision each served connector was built from (the last good one, when degraded)."""
        self._revisions: dict[tuple[str, str], int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[KeyValue.KeyWatcher] = []

    @property
    def served(self) -> list[Key]:
        """The connectors this process serves (webhooks it answers, sources it polls)."""
        return [*self._webhooks, *self._polls]

    @property
    def polled(self) -> list[PollSource]:
        """The poll sources this process runs."""
        return list(self._polls.values())

    async def start(self) -> None:
        """Read both buckets' current state, build everything once, then follow changes.

        The watchers start from each key's latest value, so a change made between the read and
        the watch is not missed; what was read already is recognised by its revision and skipped.
        """
        for entry in await current_entries(self._secrets_kv):
            self._on_secret(entry)
        for entry in await current_entries(self._specs_kv):
            self._take_spec(entry)
        self._rebuild(set(self._documents), specs_changed=True)
        log.info("configuration loaded from the spec store", extra={"connectors": len(self._documents)})
        secrets = await self._secrets_kv.watchall()
        specs = await self._specs_kv.watchall()
        self._watchers = [secrets, specs]
        self._tasks = [
            asyncio.create_task(self._follow(secrets, self._on_secret), name="watch secrets"),
            asyncio.create_task(self._follow(specs, self._take_spec), name="watch specs"),
        ]

    async def stop(self) -> None:
        """Stop following changes."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for watcher in self._watchers:
            with contextlib.suppress(Exception):  # the connection may be closing already
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self, watcher: KeyValue.KeyWatcher, handle: Callable[[KeyValue.Entry], set[Key]]) -> None:
        dirty: set[Key] = set()
        async for entry in watcher:
            if entry is None:
                continue
            try:
                dirty |= handle(entry)
                if not entry.delta:  # nothing else pending: apply the batch at once
                    self._rebuild(dirty, specs_changed=handle == self._take_spec)
                    dirty = set()
            except Exception:  # one bad entry must not stop this process from following the others
                log.exception("could not apply a configuration change", extra={"key": entry.key})

    def _seen(self, entry: KeyValue.Entry) -> bool:
        """Whether this revision of the key was taken already (read at start, then redelivered)."""
        key = (entry.bucket, entry.key)
        if entry.revision is not None and self._revisions.get(key) == entry.revision:
            return True
        if entry.revision is not None:
            self._revisions[key] = entry.revision
        return False

    def _on_secret(self, entry: KeyValue.Entry) -> set[Key]:
        if self._seen(entry):
            return set()
        changed = self._feed.apply(entry.key, _value(entry))
        if changed is None:
            return set()
        tenant, name = changed
        return {
            key
            for key, (document, _) in self._documents.items()
            if key[0] == tenant and name in store_secrets_of(document)
        }

    def _take_spec(self, entry: KeyValue.Entry) -> set[Key]:
        if self._seen(entry):
            return set()
        try:
            return self._take_parsed_spec(entry)
        except StoredSpecError as exc:  # written by something else: keep what this process has
            log.error("stored spec ignored", extra={"key": entry.key, "error": str(exc)})
            return set()

    def _take_parsed_spec(self, entry: KeyValue.Entry) -> set[Key]:
        kind, _, rest = entry.key.partition(".")
        value = _value(entry)
        if kind == "policy":
            if value is None:
                self._policies.pop(rest, None)
            else:
                self._policies[rest] = _parsed(value, PolicyDocument)[0]
            return {key for key in self._tenant_authored if key[0] == rest}  # their grants may have changed
        tenant, _, name = rest.partition(".")
        key = (tenant, name)
        self._tenant_authored.discard(key)
        if value is None:
            self._documents.pop(key, None)
        else:
            document, tenant_authored = _parsed(value, ConnectorDocument)
            self._documents[key] = (document, entry.revision or 0)
            if tenant_authored:
                self._tenant_authored.add(key)
        return {key}

    def _rebuild(self, keys: Iterable[Key], *, specs_changed: bool) -> None:
        keys = set(keys)
        for key in keys:
            self._build(key, keep_last_good=specs_changed)
        self.live.registry.replace(ConnectorRegistry(self._webhooks.values()))
        if specs_changed:
            self.live.catalog.replace(catalog_of([d for d, _ in self._documents.values()], self._policies.values()))
        sources = tuple(self._polls.values())
        if sources != self.live.sources.current:
            self.live.sources.replace(sources)
            if self._on_sources is not None:
                self._on_sources(sources)
        if keys:
            log.info("configuration applied", extra={"changed": sorted("/".join(k) for k in keys)})

    def _build(self, key: Key, *, keep_last_good: bool) -> None:
        """Build this process's part of a connector from its stored document.

        A spec change this instance cannot build (a secret it cannot resolve, say) leaves the last
        good revision serving, reported `degraded` with the reason (`keep_last_good`). A delete, a
        disable, a secret wiped or rotated away, and the tenant boundary always take effect.
        """
        previous = self._webhooks.pop(key, None) or self._polls.pop(key, None)
        stored = self._documents.get(key)
        if stored is None:
            return
        document, revision = stored
        mine = (document.spec.type == "webhook" and self._ingress) or (document.spec.type == "poll" and self._poller)
        if not mine:
            return
        if not document.spec.enabled:
            self._report(key, StatusChange(state="disabled", revision=revision, clear_error=True))
            return
        problems = (
            tenant_boundary_problems(document, self._policies.get(key[0])) if key in self._tenant_authored else []
        )
        try:
            if problems:
                raise ConfigError(problems)
            self._serve(key, self._built(document), revision)
        except ConfigError as exc:
            error = "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
            if keep_last_good and previous is not None and not problems:
                self._serve(key, previous, self._served_revisions[key])
                self._report_kept(key, revision, error)
                return
            log.error(
                "connector not served: it cannot be built here", extra={"connector": "/".join(key), "error": error}
            )
            self._report(key, StatusChange(state="error", revision=revision, last_error=error))
            return
        objectives = objectives_of(document.spec.slo)
        self._report(
            key, StatusChange(state="active", revision=revision, clear_error=True, health_checked=True, slo=objectives)
        )

    def _built(self, document: ConnectorDocument) -> Connector | PollSource:
        if document.spec.type == "webhook":
            return build_connector(
                document,
                publish_timeout_s=self._settings.publish_timeout.total_seconds(),
                claim_ttl_s=self._settings.claim_ttl.total_seconds(),
                duplicate_window_s=self._settings.duplicate_window.total_seconds(),
                resolver=self._resolver,
                disabled=self._settings.disabled_providers,
            )
        return build_source(
            document,
            publish_timeout_s=self._settings.publish_timeout.total_seconds(),
            resolver=self._resolver,
            disabled=self._settings.disabled_providers,
        )

    def _serve(self, key: Key, built: Connector | PollSource, revision: int) -> None:
        if isinstance(built, Connector):
            self._webhooks[key] = built
        else:
            self._polls[key] = built
        self._served_revisions[key] = revision

    def _report_kept(self, key: Key, revision: int, error: str) -> None:
        served = self._served_revisions[key]
        log.warning(
            "new revision cannot be built here: still serving the last good one",
            extra={"connector": "/".join(key), "revision": revision, "serving": served, "error": error},
        )
        reason = f"revision {revision} cannot be built on this instance ({error}); still serving revision {served}"
        self._report(key, StatusChange(state="degraded", revision=revision, last_error=reason))

    def _report(self, key: Key, change: StatusChange) -> None:
        if self._status is not None:
            self._status(*key, change)


def _value(entry: KeyValue.Entry) -> bytes | None:
    """The entry's value, or None for a delete or purge marker."""
    return None if entry.operation in (KV_DEL, KV_PURGE) else entry.value


Document = TypeVar("Document", ConnectorDocument, PolicyDocument)


def _parsed(value: bytes, kind: type[Document]) -> tuple[Document, bool]:
    document, tenant_authored = parse_stored(value)
    if not isinstance(document, kind):
        raise StoredSpecError(f"expected a {kind.__name__}")
    return document, tenant_authored
