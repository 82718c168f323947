"""The JetStream KV buckets of the control plane, and how their keys are spelled.

Specs, statuses, sealed secrets and API key hashes live on the bus itself (NATS KV), so every hub
instance sees one state without another store, and a change reaches every watcher at once.
KV keys are `<kind>.<tenant>.<name>`: tenant and names are `[a-z0-9-]`, so a dot never appears in
them and a key splits back unambiguously.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

SPECS_BUCKET = "hub_specs"
STATUS_BUCKET = "hub_status"
SECRETS_BUCKET = "hub_secrets"
API_KEYS_BUCKET = "hub_api_keys"
JOBS_BUCKET = "hub-jobs"
"""Replay and redrive jobs (hub/jobs/store.py), keyed by job id."""
TRASH_BUCKET = "hub-trash"
"""Soft-deleted connectors (hub/control/trash.py), keyed `<tenant>.<name>.<revision>`."""

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
    """The live entries whose keys match a subject pattern (`connector.acme.*`).

    Neither nats-py listing is reliable here: `KeyValue.keys(filters=...)` matches substrings, and
    a watcher's "no more values" marker can come before values the server has already pushed (the
    marker is decided from consumer info that counts them as delivered), which reads as an empty
    bucket. The stream's own subject counts are exact, so the keys come from there and each value
    from a direct get. nats-py's KeyValue exposes no accessor for its stream, hence the private
    attributes.
    """
    js: JetStreamContext = kv._js
    prefix: str = kv._pre
    info = await js.stream_info(kv._stream, subjects_filter=prefix + pattern)
    entries = []
    for subject in sorted(info.state.subjects or {}):
        try:
            entries.append(await kv.get(subject[len(prefix) :]))
        except KeyNotFoundError:  # deleted or purged: only its marker is left
            continue
    return entries
