"""The JetStream KV buckets of the control plane, and how their keys are spelled.

Specs, statuses, sealed secrets and API key hashes live on the bus itself (NATS KV), so every hub
instance sees one state without another store, and a change reaches every watcher at once.
KV keys are `<kind>.<tenant>.<name>`: tenant and names are `[a-z0-9-]`, so a dot never appears in
them and a key splits back unambiguously.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

SPECS_BUCKET = "hub_specs"
STATUS_BUCKET = "hub_status"
SECRETS_BUCKET = "hub_secrets"
API_KEYS_BUCKET = "hub_api_keys"

SPEC_HISTORY = 10
"""Revisions kept per spec key: enough to see what the last few applies changed."""


async def kv_bucket(js: JetStreamContext, name: str, *, replicas: int = 1, history: int = 1) -> KeyValue:
    """The bucket, created (file storage) when it does not exist yet."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        config = KeyValueConfig(bucket=name, history=history, storage=StorageType.FILE, replicas=replicas)
        return await js.create_key_value(config)


def connector_key(tenant: str, name: str) -> str:
    """The spec key of a connector."""
    return f"connector.{tenant}.{name}"


def policy_key(tenant: str) -> str:
    """The spec key of a tenant's Policy document."""
    return f"policy.{tenant}"


def status_key(tenant: str, name: str) -> str:
    """The status key of a connector."""
    return f"{tenant}.{name}"


def secret_key(tenant: str, name: str) -> str:
    """The key of a tenant's stored secret."""
    return f"{tenant}.{name}"


async def current_entries(kv: KeyValue, pattern: str = ">") -> list[KeyValue.Entry]:
    """The live entries whose keys match a subject pattern (`connector.acme.*`), read in one pass.

    nats-py's `KeyValue.keys(filters=...)` matches substrings, not subjects, and then needs a
    round trip per value; a watcher on the pattern delivers the latest value of each key at once.
    """
    watcher = await kv.watch(pattern, ignore_deletes=True)
    entries = []
    try:
        async for entry in watcher:
            if entry is None:  # the end of the current values
                break
            entries.append(entry)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return entries
