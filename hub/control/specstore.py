"""Desired state: Connector and Policy documents in the `hub_specs` KV bucket, with revisions.

The KV entry's revision is the spec's revision. Every write is conditional on the revision it was
based on (`create` for a new key, `update(last=...)` otherwise), so two applies that started from
the same revision cannot both land: the second one gets `RevisionConflict` instead of silently
undoing the first (no lost update). An apply that names no revision is based on what it read.

A document written with a tenant's key is stored with `appliedBy` beside it (outside the document,
so no document can claim it): each instance holds such a document to the tenant boundary
(hub.control.boundary) when it builds it, whatever was checked when it was applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from hub.control.buckets import connector_key, current_entries, policy_key
from hub.control.diff import FieldChange, diff
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument

SpecDocument = ConnectorDocument | PolicyDocument
APPLIED_BY = "appliedBy"
"""The stored value's field, beside the document's own, naming the tenant whose key wrote it."""
Action = Literal["created", "updated", "unchanged", "deleted"]


class RevisionConflict(Exception):
    """The stored revision is not the one the change was based on."""

    def __init__(self, key: str, expected: int | None, current: int | None) -> None:
        self.key = key
        self.expected = expected
        self.current = current
        stored = f"revision {current}" if current is not None else "nothing"
        super().__init__(f"{key} was changed meanwhile: based on revision {expected}, the store has {stored}")


class StoredSpecError(Exception):
    """A stored value does not parse as a spec (written by something else, or an older version)."""


@dataclass(frozen=True, slots=True)
class StoredSpec:
    """A document as stored, with the revision it has in the bucket."""

    document: SpecDocument
    revision: int
    tenant_authored: bool = False
    """Written with a tenant's key (the admin API, the console), not by an operator."""

    def with_revision(self) -> dict[str, Any]:
        """The document as JSON data with `metadata.revision` set: what `get` shows and an apply sends back."""
        data = self.document.model_dump(mode="json", exclude_unset=True)
        data.setdefault("metadata", {})["revision"] = self.revision
        return data


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an apply did (or, as a dry run, would do) to one document."""

    kind: str
    tenant: str
    name: str
    action: Action
    revision: int | None
    changes: list[FieldChange] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`Connector acme/gh` or `Policy acme`."""
        return f"{self.kind} {self.tenant}/{self.name}" if self.kind == "Connector" else f"{self.kind} {self.tenant}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {
            "kind": self.kind,
            "tenant": self.tenant,
            "name": self.name,
            "action": self.action,
            "revision": self.revision,
            "changes": [c.to_dict() for c in self.changes],
        }


def spec_key(document: SpecDocument) -> str:
    """The bucket key a document lives under."""
    if isinstance(document, ConnectorDocument):
        return connector_key(*document.key)
    return policy_key(document.tenant)


def comparable(document: SpecDocument) -> dict[str, Any]:
    """The document with every default filled in and without its revision: two documents that
    mean the same compare equal however they were written."""
    data = document.model_dump(mode="json")
    data["metadata"].pop("revision", None)
    return data


def parse_spec(value: bytes) -> SpecDocument:
    """A stored value as a document; StoredSpecError if it is not one."""
    return parse_stored(value)[0]


def parse_stored(value: bytes) -> tuple[SpecDocument, bool]:
    """A stored value as a document and whether a tenant's key wrote it; StoredSpecError if it is none."""
    try:
        data = orjson.loads(value)
        if not isinstance(data, dict):
            raise StoredSpecError("stored spec is not a JSON object")
        tenant_authored = data.pop(APPLIED_BY, None) is not None
        if data.get("kind") == "Policy":
            return PolicyDocument.model_validate(data), tenant_authored
        return ConnectorDocument.model_validate(data), tenant_authored
    except (orjson.JSONDecodeError, ValidationError) as exc:
        raise StoredSpecError(f"stored spec does not parse: {exc}") from None


def _stored_bytes(document: SpecDocument, *, tenant_authored: bool) -> bytes:
    data = document.model_dump(mode="json", exclude_unset=True)
    data["metadata"].pop("revision", None)
    if tenant_authored:
        data[APPLIED_BY] = {"tenant": document.metadata.tenant}
    return orjson.dumps(data)


def _stored(value: bytes, revision: int) -> StoredSpec:
    document, tenant_authored = parse_stored(value)
    return StoredSpec(document, revision, tenant_authored)


class SpecStore:
    """Connector and Policy documents in the specs bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, key: str) -> StoredSpec | None:
        """The document under a key (see `connector_key`, `policy_key`), or None."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        assert entry.value is not None
        assert entry.revision is not None
        return _stored(entry.value, entry.revision)

    async def connector(self, tenant: str, name: str) -> StoredSpec | None:
        """A connector's stored document, or None."""
        return await self.get(connector_key(tenant, name))

    async def connectors(self, tenant: str | None = None) -> list[StoredSpec]:
        """Every stored connector of a tenant (None: of every tenant), by tenant and name."""
        entries = await current_entries(self._kv, "connector.>" if tenant is None else f"connector.{tenant}.*")
        found = [_stored(e.value or b"", e.revision or 0) for e in entries]
        return sorted(found, key=lambda s: spec_key(s.document))

    async def policies(self) -> list[PolicyDocument]:
        """Every stored Policy document, by tenant."""
        found = [_stored(e.value or b"", e.revision or 0).document for e in await current_entries(self._kv, "policy.>")]
        return sorted((d for d in found if isinstance(d, PolicyDocument)), key=lambda d: d.tenant)

    async def apply(
        self, document: SpecDocument, *, dry_run: bool = False, tenant_authored: bool = False
    ) -> ApplyResult:
        """Create or update a document; a no-op when the stored one means the same (and was written
        with the same authority: a tenant re-applying an operator's document makes it the tenant's).

        `document.metadata.revision`, when set, is the revision it is based on: any other stored
        revision (or nothing stored) is a RevisionConflict. Without it, the apply is based on the
        revision it reads, and a change landing in between is still a conflict.
        """
        key = spec_key(document)
        expected = document.metadata.revision
        current = await self.get(key)
        current_revision = current.revision if current else None
        if expected is not None and expected != current_revision:
            raise RevisionConflict(key, expected, current_revision)
        before = comparable(current.document) if current else {}
        changes = diff(before, comparable(document))
        tenant, name = _identity(document)
        if current is not None and not changes and current.tenant_authored == tenant_authored:
            return ApplyResult(document.kind, tenant, name, "unchanged", current.revision)
        action: Action = "created" if current is None else "updated"
        if dry_run:
            return ApplyResult(document.kind, tenant, name, action, current_revision, changes)
        try:
            if current is None:
                revision = await self._kv.create(key, _stored_bytes(document, tenant_authored=tenant_authored))
            else:
                stored = _stored_bytes(document, tenant_authored=tenant_authored)
                revision = await self._kv.update(key, stored, last=current.revision)
        except KeyWrongLastSequenceError:
            latest = await self.get(key)
            raise RevisionConflict(key, current_revision, latest.revision if latest else None) from None
        return ApplyResult(document.kind, tenant, name, action, revision, changes)

    async def create(self, document: SpecDocument, *, tenant_authored: bool = False) -> int:
        """Store a document under a key that holds none (a restore from the trash): its new revision;
        RevisionConflict when the key holds a document."""
        key = spec_key(document)
        try:
            return await self._kv.create(key, _stored_bytes(document, tenant_authored=tenant_authored))
        except KeyWrongLastSequenceError:
            latest = await self.get(key)
            raise RevisionConflict(key, None, latest.revision if latest else None) from None

    async def delete(self, key: str, *, expected_revision: int | None = None) -> StoredSpec | None:
        """Delete a document (based on `expected_revision` when given); the deleted one, or None."""
        current = await self.get(key)
        if current is None:
            if expected_revision is not None:
                raise RevisionConflict(key, expected_revision, None)
            return None
        if expected_revision is not None and expected_revision != current.revision:
            raise RevisionConflict(key, expected_revision, current.revision)
        try:
            await self._kv.delete(key, last=current.revision)
        except KeyWrongLastSequenceError:
            latest = await self.get(key)
            raise RevisionConflict(key, current.revision, latest.revision if latest else None) from None
        return current


def _identity(document: SpecDocument) -> tuple[str, str]:
    if isinstance(document, ConnectorDocument):
        return document.key
    return document.tenant, document.metadata.name
