"""Resolve a connector's `secretRef`s into signing secrets.

Values are kept only as bytes inside `SigningSecret` (whose repr hides them). A secret that cannot
be resolved is an error that names the connector and the reference, never a value. `env` and
`file` references are read from this instance's environment; `store` references come from the
hub's encrypted store (a tenant's connectors see only that tenant's secrets), which is only there
once the hub has connected to NATS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adapters.base import SigningSecret
from schemas.connector import ConnectorDocument
from schemas.redaction import HASH_KEY_SECRET
from schemas.secrets import SecretEntry, reserved_reference


class SecretResolutionError(Exception):
    """A secret reference could not be resolved."""


class StoreLookup(Protocol):
    """The decrypting view of the secret store a running hub keeps."""

    def resolve(self, tenant: str, name: str, version: int | None = None) -> bytes:
        """The value of a tenant's secret (latest version unless pinned), or an exception saying why not."""
        ...


@dataclass(frozen=True, slots=True)
class SecretResolver:
    """Resolves references for one hub process; `store` is None before it has connected to NATS."""

    store: StoreLookup | None = None

    def resolve(self, tenant: str, entry: SecretEntry) -> SigningSecret | None:
        """The secret an entry refers to; None for a store reference while there is no store yet
        (checked again once connected); SecretResolutionError saying which reference failed."""
        ref = entry.secretRef
        if ref.source != "store":
            return resolve_secret(entry)
        if self.store is None:
            return None
        try:
            return SigningSecret(entry.key_id, self.store.resolve(tenant, ref.name, ref.version))
        except Exception as exc:  # the store's errors name the secret and version, never a value
            raise SecretResolutionError(str(exc)) from None


WITHOUT_STORE = SecretResolver()
"""For checks made before the hub has connected: store references are left to the running hub."""


def store_secrets_of(document: ConnectorDocument) -> set[str]:
    """The names of the store secrets a connector uses (its signing secrets, its poll credentials and,
    for a `hash` redaction rule, its tenant's redaction key)."""
    refs = [entry.secretRef for entry in document.spec.secrets]
    if document.spec.poll is not None and document.spec.poll.auth is not None:
        refs.append(document.spec.poll.auth.secretRef)
    names = {ref.name for ref in refs if ref.source == "store"}
    if any(rule.action == "hash" for rule in document.spec.redact):
        names.add(HASH_KEY_SECRET)
    return names


def resolve_secret(entry: SecretEntry) -> SigningSecret:
    """The secret an `env` or `file` entry refers to, or SecretResolutionError saying which reference failed."""
    ref = entry.secretRef
    if ref.source == "env":
        value = os.environ.get(ref.name)
        if not value:
            raise SecretResolutionError(f"environment variable {ref.name} is not set or empty")
        return SigningSecret(entry.key_id, value.encode())
    if ref.source == "file":
        reserved = reserved_reference("file", str(Path(ref.name).resolve()))  # through any symlink
        if reserved is not None:
            raise SecretResolutionError(f"secret file {ref.name}: {reserved}")
        try:
            content = Path(ref.name).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise SecretResolutionError(f"secret file {ref.name} cannot be read: {exc.strerror}") from None
        if not content:
            raise SecretResolutionError(f"secret file {ref.name} is empty")
        return SigningSecret(entry.key_id, content)
    raise SecretResolutionError(f"secret {ref.name} is in the hub's store, which this command cannot read")
