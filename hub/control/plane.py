"""The control plane's operations, shared by the CLI and the admin API: each one checks, writes
the store, notes the status and publishes its audit record.

Authorization is the caller's job (the admin API checks keys and scopes; the CLI has the bus's own
credentials and acts as an operator). Here every change is recorded against the actor given.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext

from events.envelope import rfc3339
from events.subjects import HUB_WIDE
from hub.control.apikeys import ApiKey, ApiKeyStore
from hub.control.audit import AuditLog
from hub.control.boundary import tenant_boundary_problems
from hub.control.buckets import (
    API_KEYS_BUCKET,
    SECRETS_BUCKET,
    SPEC_HISTORY,
    SPECS_BUCKET,
    STATUS_BUCKET,
    TRASH_BUCKET,
    connector_key,
    kv_bucket,
    policy_key,
)
from hub.control.checks import ServingLimits, StoreView, check_connector
from hub.control.sealing import MasterKey
from hub.control.secretstore import SecretStore, SecretVersionInfo
from hub.control.slo import objectives_of
from hub.control.specstore import ApplyResult, RevisionConflict, SpecDocument, SpecStore, StoredSpec
from hub.control.status import State, StatusChange, StatusStore
from hub.control.trash import Trash, TrashedConnector
from hub.errors import Problem
from hub.ingest.secrets import store_secrets_of
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from schemas.redaction import HASH_KEY_SECRET


class InvalidSpec(Exception):
    """A document fails the checks an apply makes; `problems` names each field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks: an API key (by id) or the CLI's user; and the request it belongs to."""

    key_id: str
    request_id: str | None = None
    started: float = field(default_factory=time.perf_counter)
    tenant: str | None = None
    """The tenant a tenant's key is bound to: its documents are held to the tenant boundary.
    None for an operator (spec files, the operator CLI, an operator key)."""

    @classmethod
    def cli(cls) -> Actor:
        """The operator running the CLI on this machine."""
        return cls(key_id=f"cli:{getpass.getuser()}")


PURGE_KEY_ID = "hub:trash-purge"
"""Who the periodic purge of the trash acts as, in its audit records."""


class RestoreConflict(Exception):
    """A restore would overwrite something that exists again: the connector's name or one of its secrets."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """A deleted connector, and what happened to the store secrets it used."""

    spec: StoredSpec
    wiped: list[str]
    kept: list[str]
    """Secrets also used by another connector of the tenant: left in place."""
    trashed: TrashedConnector | None = None
    """A soft delete's trash entry (with the secrets only it used); None when purged at once."""


@dataclass(frozen=True, slots=True)
class Restored:
    """A connector back from the trash: its new revision, and the entry it came from."""

    revision: int
    entry: TrashedConnector


class ControlPlane:
    """Specs, statuses, secrets and keys in their buckets, with audit records of every change."""

    def __init__(
        self,
        specs: SpecStore,
        statuses: StatusStore,
        secrets: SecretStore,
        keys: ApiKeyStore,
        audit: AuditLog,
        trash: Trash,
        *,
        master_key_set: bool,
    ) -> None:
        self._master_key_set = master_key_set
        """Whether this process can read the secret store: an apply that references a store secret
        without it is refused, as the hub (or the CLI) that applies could never read that secret."""
        self.specs = specs
        self.statuses = statuses
        self.secrets = secrets
        self.keys = keys
        self.audit = audit
        self.trash = trash

    @classmethod
    async def open(cls, js: JetStreamContext, master: MasterKey | None, *, replicas: int = 1) -> ControlPlane:
        """The control plane on this bus, its buckets created where missing."""
        return cls(
            SpecStore(await kv_bucket(js, SPECS_BUCKET, replicas=replicas, history=SPEC_HISTORY)),
            StatusStore(await kv_bucket(js, STATUS_BUCKET, replicas=replicas)),
            SecretStore(await kv_bucket(js, SECRETS_BUCKET, replicas=replicas), master),
            ApiKeyStore(await kv_bucket(js, API_KEYS_BUCKET, replicas=replicas)),
            AuditLog(js),
            Trash(await kv_bucket(js, TRASH_BUCKET, replicas=replicas)),
            master_key_set=master is not None,
        )

    async def check(
        self, document: SpecDocument, actor: Actor | None = None, *, limits: ServingLimits | None = None
    ) -> list[Problem]:
        """What would make an apply of this document by `actor` (default: an operator) fail its checks;
        `limits` are the checking process's settings (see `check_connector`)."""
        if not isinstance(document, ConnectorDocument):
            return []
        tenant = document.metadata.tenant
        problems: list[Problem] = []
        if actor is not None and actor.tenant is not None:
            policy = await self.specs.get(policy_key(tenant))
            problems = tenant_boundary_problems(
                document, policy.document if policy and isinstance(policy.document, PolicyDocument) else None
            )
        store = StoreView({info.name for info in await self.secrets.list(tenant)}, self._master_key_set)
        return problems + check_connector(document, limits, store)

    async def apply(
        self, document: SpecDocument, actor: Actor, *, dry_run: bool = False, limits: ServingLimits | None = None
    ) -> ApplyResult:
        """Check, then create or update (RevisionConflict, InvalidSpec); audited unless a dry run."""
        problems = await self.check(document, actor, limits=limits)
        action = "connector_apply" if isinstance(document, ConnectorDocument) else "policy_apply"
        tenant = document.metadata.tenant
        target = _target(document)
        if problems:
            if not dry_run:
                await self.audit.record_by(actor, tenant, action, target, "invalid", {"problems": len(problems)})
            raise InvalidSpec(problems)
        try:
            result = await self.specs.apply(document, dry_run=dry_run, tenant_authored=actor.tenant is not None)
        except RevisionConflict as conflict:
            if not dry_run:
                sides = {"expected": conflict.expected, "current": conflict.current}
                await self.audit.record_by(actor, tenant, action, target, "conflict", sides)
            raise
        if dry_run:
            return result
        if isinstance(document, ConnectorDocument) and result.action != "unchanged":
            state: State = "provisioning" if document.spec.enabled else "disabled"
            # a new revision: the certification starts over (`pending`), with this spec's objectives
            change = StatusChange(state=state, revision=result.revision, slo=objectives_of(document.spec.slo))
            await self.statuses.update(*document.key, change)
        detail: dict[str, object] = {"revision": result.revision, "changes": [c.path for c in result.changes]}
        await self.audit.record_by(actor, tenant, action, target, result.action, detail)
        return result

    async def delete_connector(
        self, tenant: str, name: str, actor: Actor, *, expected_revision: int | None = None, purge: bool = False
    ) -> Deleted | None:
        """Delete a connector (None if there is none): it stops being served at once. A soft delete
        keeps it in the trash with the store secrets only it used (restorable for the retention);
        `purge` wipes those secrets and keeps nothing."""
        target = f"{tenant}/{name}"
        try:
            current = await self._current(tenant, name, expected_revision)
            if current is None:
                return None
            only, kept = await self._secrets_only_of(current)
            trashed = None if purge else await self.trash.keep(await self._trash_entry(current, only, actor))
            try:
                await self.specs.delete(connector_key(tenant, name), expected_revision=current.revision)
            except RevisionConflict:
                if trashed is not None:
                    await self.trash.take(trashed)
                raise
        except RevisionConflict as conflict:
            sides = {"expected": conflict.expected, "current": conflict.current}
            await self.audit.record_by(actor, tenant, "connector_delete", target, "conflict", sides)
            raise
        await self.statuses.remove(tenant, name)
        wiped: list[str] = []
        for secret in only:
            if purge:
                if await self.wipe_secret(tenant, secret, actor):
                    wiped.append(secret)
            else:
                await self.secrets.delete(tenant, secret)  # moved: its sealed record is in the trash entry
        detail: dict[str, object] = {"revision": current.revision, "keptSecrets": kept}
        detail |= {"wipedSecrets": wiped} if purge else {"trashedSecrets": only}
        await self.audit.record_by(actor, tenant, "connector_delete", target, "purged" if purge else "trashed", detail)
        return Deleted(current, wiped, kept, trashed)

    async def restore_connector(
        self, tenant: str, name: str, actor: Actor, *, retention: timedelta, now: datetime | None = None
    ) -> Restored | None:
        """Bring the connector's latest trash entry back (None if there is none within `retention`):
        its secrets back in the store, then its document as a new revision. RestoreConflict when its
        name or one of its secrets exists again."""
        entry = await self.trash.latest(tenant, name)
        if entry is None or entry.expired(now or datetime.now(UTC), retention):
            return None
        target = f"{tenant}/{name}"
        try:
            revision = await self._restore(entry)
        except RestoreConflict as conflict:
            await self.audit.record_by(
                actor, tenant, "connector_restore", target, "conflict", {"reason": str(conflict)}
            )
            raise
        if revision is None:
            return None
        state: State = "provisioning" if entry.document.spec.enabled else "disabled"
        await self.statuses.update(tenant, name, StatusChange(state=state, revision=revision))
        detail = {"revision": revision, "deletedRevision": entry.revision, "restoredSecrets": entry.secret_names}
        await self.audit.record_by(actor, tenant, "connector_restore", target, "restored", detail)
        return Restored(revision, entry)

    async def purge_trash(self, now: datetime, retention: timedelta) -> list[TrashedConnector]:
        """Remove every trash entry past `retention` (with the sealed secrets it holds), each audited
        once: an entry another instance purged or restored meanwhile is left to it."""
        purged = []
        for entry in await self.trash.entries():
            if entry.expired(now, retention) and await self.trash.take(entry):
                purged.append(entry)
                detail = {
                    "revision": entry.revision,
                    "deletedAt": rfc3339(entry.deleted_at),
                    "deletedBy": entry.deleted_by,
                    "wipedSecrets": entry.secret_names,
                }
                target = f"{entry.tenant}/{entry.name}"
                await self.audit.record_by(
                    Actor(PURGE_KEY_ID), entry.tenant, "connector_purge", target, "purged", detail
                )
        return purged

    async def _current(self, tenant: str, name: str, expected_revision: int | None) -> StoredSpec | None:
        """The stored connector; RevisionConflict when it is not at `expected_revision`."""
        current = await self.specs.connector(tenant, name)
        found = current.revision if current else None
        if expected_revision is not None and expected_revision != found:
            raise RevisionConflict(connector_key(tenant, name), expected_revision, found)
        return current

    async def _secrets_only_of(self, stored: StoredSpec) -> tuple[list[str], list[str]]:
        """The store secrets a connector uses: those no other connector of its tenant uses, and the others."""
        if not isinstance(stored.document, ConnectorDocument):
            return [], []
        tenant, name = stored.document.key
        in_use = {
            secret
            for other in await self.specs.connectors(tenant)
            if isinstance(other.document, ConnectorDocument) and other.document.key != (tenant, name)
            for secret in store_secrets_of(other.document)
        }
        used = sorted(store_secrets_of(stored.document))
        in_use.add(HASH_KEY_SECRET)  # the tenant's redaction key is the tenant's, never one connector's
        return [s for s in used if s not in in_use], [s for s in used if s in in_use]

    async def _trash_entry(self, stored: StoredSpec, secrets: list[str], actor: Actor) -> TrashedConnector:
        assert isinstance(stored.document, ConnectorDocument)
        tenant = stored.document.metadata.tenant
        records = [(secret, await self.secrets.sealed_record(tenant, secret)) for secret in secrets]
        return TrashedConnector(
            document=stored.document,
            revision=stored.revision,
            deleted_at=datetime.now(UTC),
            deleted_by=actor.key_id,
            tenant_authored=stored.tenant_authored,
            secrets=tuple((secret, record) for secret, record in records if record is not None),
        )

    async def _restore(self, entry: TrashedConnector) -> int | None:
        """Secrets, then the document (so a watcher building it finds its secrets); everything this
        restore wrote is undone, and the entry kept again, when something got in its way meanwhile.
        None when the entry went (purged or restored by another caller) since it was read."""
        tenant, name = entry.tenant, entry.name
        current = await self.specs.connector(tenant, name)
        if current is not None:
            raise RestoreConflict(
                f"connector {tenant}/{name} exists again (revision {current.revision}): "
                "delete it first to restore the deleted one"
            )
        missing = []
        for secret, record in entry.secrets:
            stored = await self.secrets.sealed_record(tenant, secret)
            if stored is None:
                missing.append((secret, record))
            elif stored != record:  # the same record is still there after an interrupted delete: fine
                raise RestoreConflict(
                    f"secret {secret} of tenant {tenant} exists again: wipe it first to restore "
                    f"connector {tenant}/{name} with the secret it had"
                )
        if not await self.trash.take(entry):
            return None
        written: list[str] = []
        try:
            for secret, record in missing:
                if not await self.secrets.put_sealed_record(tenant, secret, record):
                    raise RestoreConflict(f"secret {secret} of tenant {tenant} was set meanwhile")
                written.append(secret)
            try:
                return await self.specs.create(entry.document, tenant_authored=entry.tenant_authored)
            except RevisionConflict:
                raise RestoreConflict(f"connector {tenant}/{name} was created meanwhile") from None
        except RestoreConflict:
            for secret in written:
                await self.secrets.delete(tenant, secret)
            await self.trash.keep(entry)
            raise

    async def set_secret(self, tenant: str, name: str, value: bytes, actor: Actor) -> SecretVersionInfo:
        """Store a new version of a secret; the audit record names it and its version, never its value."""
        info = await self.secrets.set(tenant, name, value)
        await self.audit.record_by(actor, tenant, "secret_set", f"{tenant}/{name}", "stored", {"version": info.version})
        return info

    async def wipe_secret(self, tenant: str, name: str, actor: Actor) -> bool:
        """Delete every version of a secret; False if there was none."""
        wiped = await self.secrets.delete(tenant, name)
        if wiped:
            await self.audit.record_by(actor, tenant, "secret_wipe", f"{tenant}/{name}", "wiped", {})
        return wiped

    async def create_key(
        self, tenant: str | None, scopes: list[str], description: str, actor: Actor
    ) -> tuple[str, ApiKey]:
        """A new API key: the token (shown once) and its record."""
        token, key = await self.keys.create(tenant, scopes, description)
        detail = {"scopes": sorted(key.scopes), "operator": tenant is None}
        await self.audit.record_by(actor, tenant or HUB_WIDE, "key_create", key.id, "created", detail)
        return token, key

    async def revoke_key(self, key_id: str, actor: Actor) -> ApiKey | None:
        """Revoke a key; None if unknown."""
        key = await self.keys.revoke(key_id)
        if key is not None:
            await self.audit.record_by(actor, key.tenant or HUB_WIDE, "key_revoke", key.id, "revoked", {})
        return key


def _target(document: SpecDocument) -> str:
    if isinstance(document, ConnectorDocument):
        return "/".join(document.key)
    return document.metadata.tenant
