"""A connector as the running hub serves it: its spec from the spec store and its store secrets
opened with the master key, for CLI commands run by the operator next to the hub.

`url-token` issues URLs signed with a store secret this way, so a url-token connector needs no
reference to the hub's own settings (`HUB_*` variables are never a connector's secret).
"""

from __future__ import annotations

from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, current_entries, kv_bucket
from hub.control.secretstore import SecretCache
from hub.control.specstore import SpecStore
from hub.errors import ConfigError, Problem
from hub.registry import Connector, build_connector
from hub.runner import master_key
from hub.secrets import SecretResolver
from hub.settings import Settings
from hub.tail import connect
from schemas.connector import ConnectorDocument


async def deployed_connector(settings: Settings, target: str) -> Connector:
    """The connector `tenant/name` from the running hub's spec store, its secrets resolved; ConfigError
    when it is not deployed or cannot be built here."""
    tenant, _, name = target.partition("/")
    nc = await connect(settings, "connector-hub-cli")
    try:
        js = nc.jetstream()
        stored = await SpecStore(await kv_bucket(js, SPECS_BUCKET, replicas=settings.stream_replicas)).connector(
            tenant, name
        )
        if stored is None or not isinstance(stored.document, ConnectorDocument):
            raise ConfigError([Problem("", "", f"no connector {target} in the running hub's spec store")])
        secrets = SecretCache(master_key(settings))
        secrets_kv = await kv_bucket(js, SECRETS_BUCKET, replicas=settings.stream_replicas)
        for entry in await current_entries(secrets_kv, f"{tenant}.*"):
            secrets.apply(entry.key, entry.value)
    finally:
        await nc.close()
    return build_connector(
        stored.document,
        publish_timeout_s=settings.publish_timeout.total_seconds(),
        claim_ttl_s=settings.claim_ttl.total_seconds(),
        duplicate_window_s=settings.duplicate_window.total_seconds(),
        resolver=SecretResolver(secrets),
    )
