"""The control plane's operations, shared by the CLI and the admin API: each one checks, writes
the store, notes the status and publishes its audit record.

Authorization is the caller's job (the admin API checks keys and scopes; the CLI has the bus's own
credentials and acts as an operator). Here every change is recorded against the actor given.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from nats.js import JetStreamContext

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
    connector_key,
    kv_bucket,
    policy_key,
)
from hub.control.checks import ServingLimits, StoreView, check_connector
from hub.control.sealing import MasterKey
from hub.control.secretstore import SecretStore, SecretVersionInfo
from hub.control.specstore import ApplyResult, RevisionConflict, SpecDocument, SpecStore, StoredSpec
from hub.control.status import State, StatusChange, StatusStore
from hub.errors import Problem
from hub.ingest.secrets import store_secrets_of
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument


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


@dataclass(frozen=True, slots=True)
class Deleted:
    """A deleted connector, and what happened to the store secrets it used."""

    spec: StoredSpec
    wiped: list[str]
    kept: list[str]
    """Secrets also used by another connector of the tenant: left in place."""


class ControlPlane:
    """Specs, statuses, secrets and keys in their buckets, with audit records of every change."""

    def __init__(
        self,
        specs: SpecStore,
        statuses: StatusStore,
        secrets: SecretStore,
        keys: ApiKeyStore,
        audit: AuditLog,
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

    @classmethod
    async def open(cls, js: JetStreamContext, master: MasterKey | None, *, replicas: int = 1) -> ControlPlane:
        """The control plane on this bus, its buckets created where missing."""
        return cls(
            SpecStore(await kv_bucket(js, SPECS_BUCKET, replicas=replicas, history=SPEC_HISTORY)),
            StatusStore(await kv_bucket(js, STATUS_BUCKET, replicas=replicas)),
            SecretStore(await kv_bucket(js, SECRETS_BUCKET, replicas=replicas), master),
            ApiKeyStore(await kv_bucket(js, API_KEYS_BUCKET, replicas=replicas)),
            AuditLog(js),
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
                await self._audit(actor, tenant, action, target, "invalid", {"problems": len(problems)})
            raise InvalidSpec(problems)
        try:
            result = await self.specs.apply(document, dry_run=dry_run, tenant_authored=actor.tenant is not None)
        except RevisionConflict as conflict:
            if not dry_run:
                sides = {"expected": conflict.expected, "current": conflict.current}
                await self._audit(actor, tenant, action, target, "conflict", sides)
            raise
        if dry_run:
            return result
        if isinstance(document, ConnectorDocument) and result.action != "unchanged":
            state: State = "provisioning" if document.spec.enabled else "disabled"
            await self.statuses.update(*document.key, StatusChange(state=state, revision=result.revision))
        detail: dict[str, object] = {"revision": result.revision, "changes": [c.path for c in result.changes]}
        await self._audit(actor, tenant, action, target, result.action, detail)
        return result

    async def delete_connector(
        self, tenant: str, name: str, actor: Actor, *, expected_revision: int | None = None, wipe_secrets: bool = False
    ) -> Deleted | None:
        """Delete a connector (None if there is none); with `wipe_secrets`, also the store secrets
        only it used."""
        target = f"{tenant}/{name}"
        try:
            deleted = await self.specs.delete(connector_key(tenant, name), expected_revision=expected_revision)
        except RevisionConflict as conflict:
            sides = {"expected": conflict.expected, "current": conflict.current}
            await self._audit(actor, tenant, "connector_delete", target, "conflict", sides)
            raise
        if deleted is None:
            return None
        await self.statuses.remove(tenant, name)
        wiped: list[str] = []
        kept: list[str] = []
        if wipe_secrets and isinstance(deleted.document, ConnectorDocument):
            in_use = {
                secret
                for stored in await self.specs.connectors(tenant)
                if isinstance(stored.document, ConnectorDocument)
                for secret in store_secrets_of(stored.document)
            }
            for secret in sorted(store_secrets_of(deleted.document)):
                if secret in in_use:
                    kept.append(secret)
                elif await self.wipe_secret(tenant, secret, actor):
                    wiped.append(secret)
        detail: dict[str, object] = {"revision": deleted.revision, "wipedSecrets": wiped, "keptSecrets": kept}
        await self._audit(actor, tenant, "connector_delete", target, "deleted", detail)
        return Deleted(deleted, wiped, kept)

    async def set_secret(self, tenant: str, name: str, value: bytes, actor: Actor) -> SecretVersionInfo:
        """Store a new version of a secret; the audit record names it and its version, never its value."""
        info = await self.secrets.set(tenant, name, value)
        await self._audit(actor, tenant, "secret_set", f"{tenant}/{name}", "stored", {"version": info.version})
        return info

    async def wipe_secret(self, tenant: str, name: str, actor: Actor) -> bool:
        """Delete every version of a secret; False if there was none."""
        wiped = await self.secrets.delete(tenant, name)
        if wiped:
            await self._audit(actor, tenant, "secret_wipe", f"{tenant}/{name}", "wiped", {})
        return wiped

    async def create_key(
        self, tenant: str | None, scopes: list[str], description: str, actor: Actor
    ) -> tuple[str, ApiKey]:
        """A new API key: the token (shown once) and its record."""
        token, key = await self.keys.create(tenant, scopes, description)
        detail = {"scopes": sorted(key.scopes), "operator": tenant is None}
        await self._audit(actor, tenant or HUB_WIDE, "key_create", key.id, "created", detail)
        return token, key

    async def revoke_key(self, key_id: str, actor: Actor) -> ApiKey | None:
        """Revoke a key; None if unknown."""
        key = await self.keys.revoke(key_id)
        if key is not None:
            await self._audit(actor, key.tenant or HUB_WIDE, "key_revoke", key.id, "revoked", {})
        return key

    async def _audit(
        self, actor: Actor, tenant: str, action: str, target: str, outcome: str, detail: Mapping[str, object]
    ) -> None:
        await self.audit.record(
            tenant=tenant,
            action=action,
            target=target,
            outcome=outcome,
            request_id=actor.request_id,
            key_id=actor.key_id,
            started=actor.started,
            detail=detail,
        )


def _target(document: SpecDocument) -> str:
    if isinstance(document, ConnectorDocument):
        return "/".join(document.key)
    return document.metadata.tenant
