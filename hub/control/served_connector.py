"""A connector as this hub would serve it now, built from the spec store and the secret store: what
a retry of a kept request verifies with. The admin API (hub/admin/rejected_api.py) and the console
(hub/console/rejected_page.py) both call `current_connector`, each turning its errors into its own
answer (409 `not_served`, 503 `secret_store_unavailable`)."""

from __future__ import annotations

from nats.aio.client import Client as NATS

from hub.control.boundary import tenant_boundary_problems
from hub.control.buckets import SECRETS_BUCKET, current_entries, kv_bucket
from hub.control.plane import ControlPlane
from hub.control.sealing import MasterKeyError, load_master_key
from hub.control.secretstore import SecretCache
from hub.errors import ConfigError
from hub.ingest.connectors import Connector, build_connector
from hub.ingest.secrets import SecretResolver
from hub.settings import Settings
from schemas.connector import ConnectorDocument


class NotServed(Exception):
    """The connector is deleted, disabled, not a webhook, outside its tenant's boundary, or cannot be
    built; `problems` say why field by field when there is more to say than the message."""

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class SecretStoreUnavailable(Exception):
    """The master key cannot be read, so store secrets cannot be opened."""


async def current_connector(plane: ControlPlane, nc: NATS, settings: Settings, tenant: str, name: str) -> Connector:
    """The connector as this hub would serve it now, its store secrets opened with the master key.

    The caller has checked that its key reaches `tenant`."""
    stored = await plane.specs.connector(tenant, name)
    document = stored.document if stored else None
    if not isinstance(document, ConnectorDocument) or document.spec.type != "webhook" or not document.spec.enabled:
        raise NotServed(f"{tenant}/{name} is not an enabled webhook connector now")
    if stored is not None and stored.tenant_authored:  # served only inside the tenant boundary, as the watcher does
        policy = next((p for p in await plane.specs.policies() if p.metadata.tenant == tenant), None)
        if boundary := tenant_boundary_problems(document, policy):
            problems = [{"field": p.field, "message": p.message} for p in boundary]
            raise NotServed(f"{tenant}/{name} is not served: outside its tenant's boundary", problems)
    try:
        master = load_master_key(
            settings.master_key.get_secret_value() if settings.master_key else None, settings.master_key_file
        )
    except MasterKeyError:
        raise SecretStoreUnavailable("the master key cannot be read") from None
    cache = SecretCache(master)
    secrets_kv = await kv_bucket(nc.jetstream(), SECRETS_BUCKET, replicas=settings.stream_replicas)
    for entry in await current_entries(secrets_kv, f"{tenant}.*"):
        cache.apply(entry.key, entry.value)
    try:
        return build_connector(
            document,
            publish_timeout_s=settings.publish_timeout.total_seconds(),
            claim_ttl_s=settings.claim_ttl.total_seconds(),
            duplicate_window_s=settings.duplicate_window.total_seconds(),
            resolver=SecretResolver(cache),
            disabled=settings.disabled_providers,
        )
    except ConfigError as exc:
        problems = [{"field": p.field, "message": p.message} for p in exc.problems]
        raise NotServed(f"{tenant}/{name} cannot be built now", problems) from None
