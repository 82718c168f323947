"""Soft-deleted connectors: kept in the `hub-trash` KV bucket for HUB_DELETED_RETENTION, then purged.

A delete moves the connector's document out of the spec store (so every instance's watcher stops
serving it at once) into one trash entry, `<tenant>.<name>.<revision>` (the spec's last revision,
unique in the specs bucket, so a name deleted twice keeps both entries). Beside the document the
entry holds when and by whom it was deleted and the secret store records of the secrets only it
used, copied as the store keeps them: every version sealed under the master key, bound to its
tenant, name and version, so the trash never holds a readable value and a record only opens again
in its own place. The document itself holds no secret value (secret references only), as in the
spec store.

Taking an entry out (a restore, or the purge once the retention has passed) is a delete conditional
on the entry's revision: of two instances purging at once, or a purge racing a restore, exactly one
wins, and only the winner acts and audits. The bucket keeps one message per key, so the delete
marker replaces the sealed records in the stream: a purged entry leaves no ciphertext behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import nats.errors
import orjson
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from events.envelope import rfc3339
from hub.control.buckets import current_entries
from hub.runtime.waiting import wait_set
from schemas.connector import ConnectorDocument
from schemas.durations import format_duration

log = logging.getLogger(__name__)

WRONG_LAST_SEQUENCE = (10071, 10164)
"""JetStream's error codes for a write conditional on a revision the key no longer has."""

PURGE_EVERY_S = 300.0
"""How often a process with the admin role looks for expired entries (more often for a short retention)."""


class TrashError(Exception):
    """A trash entry does not parse (written by something else, or an older version)."""


@dataclass(frozen=True, slots=True)
class TrashedConnector:
    """One soft-deleted connector: its document, who deleted it when, and its secrets, still sealed."""

    document: ConnectorDocument
    revision: int
    """The spec's revision when it was deleted."""
    deleted_at: datetime
    deleted_by: str
    """The deleting actor's key id (`cli:<user>` from the CLI)."""
    tenant_authored: bool
    """Written with a tenant's key: restored with the same authority (hub.control.specstore)."""
    secrets: tuple[tuple[str, bytes], ...] = ()
    """(name, sealed store record) of the store secrets only this connector used."""
    entry_revision: int = 0
    """The trash entry's own revision (0 until it is kept): taking it out is conditional on it."""

    @property
    def tenant(self) -> str:
        return self.document.metadata.tenant

    @property
    def name(self) -> str:
        return self.document.metadata.name

    @property
    def key(self) -> str:
        """The trash bucket key."""
        return f"{self.tenant}.{self.name}.{self.revision}"

    @property
    def secret_names(self) -> list[str]:
        return [name for name, _ in self.secrets]

    def expires_at(self, retention: timedelta) -> datetime:
        """When the purge removes it."""
        return self.deleted_at + retention

    def expired(self, now: datetime, retention: timedelta) -> bool:
        """Past its retention: no longer restorable, due for the purge."""
        return now >= self.expires_at(retention)

    def to_dict(self, retention: timedelta) -> dict[str, Any]:
        """What a listing shows: names, revision, times and actor; never a sealed record."""
        return {
            "tenant": self.tenant,
            "name": self.name,
            "revision": self.revision,
            "deletedAt": rfc3339(self.deleted_at),
            "deletedBy": self.deleted_by,
            "expiresAt": rfc3339(self.expires_at(retention)),
            "retention": format_duration(retention),
            "secrets": self.secret_names,
        }

    def encode(self) -> bytes:
        document = self.document.model_dump(mode="json", exclude_unset=True)
        document["metadata"].pop("revision", None)
        return orjson.dumps(
            {
                "document": document,
                "revision": self.revision,
                "deletedAt": rfc3339(self.deleted_at),
                "deletedBy": self.deleted_by,
                "tenantAuthored": self.tenant_authored,
                "secrets": {name: orjson.loads(record) for name, record in self.secrets},
            }
        )

    @classmethod
    def decode(cls, data: bytes, entry_revision: int) -> TrashedConnector:
        """An entry as stored; TrashError if it is not one."""
        try:
            raw = orjson.loads(data)
            secrets = tuple((str(name), orjson.dumps(record)) for name, record in raw["secrets"].items())
            return cls(
                document=ConnectorDocument.model_validate(raw["document"]),
                revision=int(raw["revision"]),
                deleted_at=datetime.fromisoformat(raw["deletedAt"]).astimezone(UTC),
                deleted_by=str(raw["deletedBy"]),
                tenant_authored=bool(raw["tenantAuthored"]),
                secrets=secrets,
                entry_revision=entry_revision,
            )
        except (orjson.JSONDecodeError, ValidationError, KeyError, TypeError, ValueError, AttributeError):
            raise TrashError("a trash entry does not parse") from None


class Trash:
    """The trash bucket: keep an entry, list them, take one out (restore or purge)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def keep(self, entry: TrashedConnector) -> TrashedConnector:
        """Store a new entry; the entry with its revision."""
        revision = await self._kv.create(entry.key, entry.encode())
        return replace(entry, entry_revision=revision)

    async def entries(self, tenant: str | None = None, name: str | None = None) -> list[TrashedConnector]:
        """The kept entries (of a tenant, of one connector), by tenant, name and deletion time.
        An entry that does not parse is skipped with a warning: it can be neither shown nor restored."""
        pattern = ">" if tenant is None else f"{tenant}.{name or '*'}.*"
        found = []
        for entry in await current_entries(self._kv, pattern):
            try:
                found.append(TrashedConnector.decode(entry.value or b"", entry.revision or 0))
            except TrashError:
                log.warning("skipping a trash entry that does not parse", extra={"key": entry.key})
        return sorted(found, key=lambda e: (e.tenant, e.name, e.deleted_at))

    async def latest(self, tenant: str, name: str) -> TrashedConnector | None:
        """The connector's most recently deleted entry, or None."""
        kept = await self.entries(tenant, name)
        return kept[-1] if kept else None

    async def take(self, entry: TrashedConnector) -> bool:
        """Remove the entry unless it changed or went since it was read; whether this call removed it."""
        try:
            await self._kv.delete(entry.key, last=entry.entry_revision)
        except BadRequestError as exc:
            if exc.err_code in WRONG_LAST_SEQUENCE:  # nats-py maps these for an update, not for a delete
                return False
            raise
        return True


class TrashPurger(Protocol):
    """What the periodic purge calls (the control plane, which audits each purge)."""

    async def purge_trash(self, now: datetime, retention: timedelta) -> Sequence[TrashedConnector]: ...


def purge_interval(retention: timedelta) -> float:
    """Seconds between purge rounds: PURGE_EVERY_S, or a quarter of a shorter retention (at least 1 s)."""
    return max(1.0, min(PURGE_EVERY_S, retention.total_seconds() / 4))


@contextlib.asynccontextmanager
async def purging(plane: TrashPurger, retention: timedelta) -> AsyncIterator[None]:
    """Purge expired trash entries periodically while inside; every admin process runs one (a
    conditional delete makes each entry's purge happen once however many run)."""

    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                purged = await plane.purge_trash(datetime.now(UTC), retention)
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("trash purge round failed", extra={"error": type(exc).__name__})
            else:
                if purged:
                    log.info("purged deleted connectors", extra={"purged": [e.key for e in purged]})
            await wait_set(stop, purge_interval(retention))

    task = asyncio.create_task(loop(), name="trash purge")
    try:
        yield
    finally:
        stop.set()  # the loop ends at its next turn even if a library swallows the cancellation
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
