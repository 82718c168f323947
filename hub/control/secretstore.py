"""The hub's write-only secret store: sealed secret values in a NATS KV bucket.

Envelope scheme (see `hub.control.sealing`): every version of a secret is encrypted with its own
random AES-256-GCM data key, and only that data key is encrypted ("wrapped") with the hub's master
key (HUB_MASTER_KEY or HUB_MASTER_KEY_FILE). The associated data of both layers is
`connector-hub secret <tenant>/<name>/v<version>`, so a record or a version copied under another
key fails to decrypt instead of handing one connector another's secret.

Why KV: the sealed records live on the bus every hub instance already shares, so one `set` reaches
every instance's watcher at once and no further store (or its backups) ever sees a plaintext. One
KV entry per (tenant, name) holds all kept versions, written with compare-and-set on the entry's
revision, so concurrent writers never lose a version; the bucket keeps no history of its own.

Write-only: no public method of `SecretStore` returns a value, only names, versions and times.
Plaintext exists only inside the hub process, when `SecretCache.resolve` opens a version for the
code that signs or verifies with it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from events.envelope import rfc3339
from hub.control.buckets import current_entries, secret_key
from hub.control.sealing import MasterKey, SealedValue, SealingError, seal, unseal
from schemas.connector import NAME_PATTERN
from schemas.secrets import STORE_NAME_PATTERN

log = logging.getLogger(__name__)

KEEP_VERSIONS = 10
"""Versions kept per secret. Older ones are dropped on the next `set`: a connector pinned to a
recent version keeps verifying while a rotation rolls out, but the store is not an archive, and a
superseded secret should stop existing rather than stay decryptable forever."""

WRITE_ATTEMPTS = 8
"""Compare-and-set attempts per `set` before giving up on a key that other writers keep changing."""


class SecretStoreError(Exception):
    """The store cannot do what was asked. Messages name secrets, never their values."""


class SecretNotFound(SecretStoreError):
    """No such secret, or no such version of it."""


class MasterKeyMissing(SecretStoreError):
    """The hub has no master key, so it can neither seal nor open secrets."""

    def __init__(self) -> None:
        super().__init__(
            "HUB_MASTER_KEY (or HUB_MASTER_KEY_FILE) is not set: the secret store cannot encrypt or decrypt"
        )


@dataclass(frozen=True)
class SecretVersionInfo:
    """One kept version of a secret: its number and when it was set (RFC 3339, UTC)."""

    version: int
    created_at: str


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: its name and versions, never a value."""

    tenant: str
    name: str
    versions: tuple[SecretVersionInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [{"version": v.version, "createdAt": v.created_at} for v in self.versions],
            "updatedAt": self.versions[-1].created_at,
        }


@dataclass(frozen=True)
class _StoredVersion:
    version: int
    created_at: str
    sealed: SealedValue


@dataclass(frozen=True)
class _Record:
    """The KV entry of one secret: its kept versions, oldest first."""

    tenant: str
    name: str
    versions: tuple[_StoredVersion, ...]

    def info(self) -> SecretInfo:
        versions = tuple(SecretVersionInfo(v.version, v.created_at) for v in self.versions)
        return SecretInfo(self.tenant, self.name, versions)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "tenant": self.tenant,
                "name": self.name,
                "versions": [
                    {"version": v.version, "createdAt": v.created_at, "sealed": v.sealed.to_dict()}
                    for v in self.versions
                ],
            }
        )

    @classmethod
    def decode(cls, tenant: str, name: str, data: bytes) -> _Record:
        """The record stored under `tenant`/`name`; SecretStoreError if it is malformed or belongs elsewhere."""
        try:
            raw = orjson.loads(data)
            if raw["tenant"] != tenant or raw["name"] != name:
                raise ValueError("the record names another secret")
            versions = tuple(
                _StoredVersion(_version_number(v["version"]), _text(v["createdAt"]), SealedValue.from_dict(v["sealed"]))
                for v in raw["versions"]
            )
            numbers = [v.version for v in versions]
            if not numbers or numbers != sorted(set(numbers)):
                raise ValueError("versions are missing or out of order")
        except (KeyError, TypeError, ValueError, SealingError):
            raise SecretStoreError(f"the stored record of secret {name} of tenant {tenant} is malformed") from None
        return cls(tenant, name, versions)


def _version_number(value: Any) -> int:
    if type(value) is not int or value < 1:
        raise ValueError("a version is a positive integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _aad(tenant: str, name: str, version: int) -> bytes:
    """Binds a sealed version to its place in the store."""
    return f"connector-hub secret {tenant}/{name}/v{version}".encode()


def _check_tenant(tenant: str) -> None:
    if not re.fullmatch(NAME_PATTERN, tenant):
        raise ValueError(f"invalid tenant {tenant!r}: expected {NAME_PATTERN}")


def _key(tenant: str, name: str) -> str:
    """The KV key of a secret, once tenant and name are known to keep `<tenant>.<name>` unambiguous."""
    _check_tenant(tenant)
    if not re.fullmatch(STORE_NAME_PATTERN, name):
        raise ValueError(f"invalid secret name {name!r}: expected {STORE_NAME_PATTERN}")
    return secret_key(tenant, name)


def _split_key(key: str) -> tuple[str, str] | None:
    tenant, _, name = key.partition(".")
    if re.fullmatch(NAME_PATTERN, tenant) and re.fullmatch(STORE_NAME_PATTERN, name):
        return tenant, name
    return None


class SecretStore:
    """Sets, lists and deletes sealed secrets in the secrets bucket; never reads a value back."""

    def __init__(self, kv: KeyValue, master: MasterKey | None) -> None:
        self._kv = kv
        self._master = master

    async def set(self, tenant: str, name: str, value: bytes) -> SecretVersionInfo:
        """Seal `value` as the secret's next version; the oldest versions beyond KEEP_VERSIONS are dropped."""
        key = _key(tenant, name)
        if not value:
            raise ValueError("a secret value cannot be empty")
        if self._master is None:
            raise MasterKeyMissing
        for _ in range(WRITE_ATTEMPTS):
            current, revision = await self._read(tenant, name)
            kept = current.versions if current else ()
            number = kept[-1].version + 1 if kept else 1
            created_at = rfc3339(datetime.now(UTC))
            new = _StoredVersion(number, created_at, seal(self._master, _aad(tenant, name, number), value))
            data = _Record(tenant, name, (*kept, new)[-KEEP_VERSIONS:]).encode()
            try:
                if revision is None:
                    await self._kv.create(key, data)
                else:
                    await self._kv.update(key, data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another writer got there first: build on its version
            return SecretVersionInfo(number, created_at)
        raise SecretStoreError(
            f"secret {name} of tenant {tenant} changed under every one of {WRITE_ATTEMPTS} attempts to set it"
        )

    async def list(self, tenant: str) -> list[SecretInfo]:
        """The tenant's secrets, sorted by name."""
        _check_tenant(tenant)
        records = []
        for entry in await current_entries(self._kv, f"{tenant}.*"):
            names = _split_key(entry.key)
            if names is not None:
                records.append(_Record.decode(*names, entry.value or b""))
        return sorted((record.info() for record in records), key=lambda info: info.name)

    async def info(self, tenant: str, name: str) -> SecretInfo | None:
        """The secret's versions, or None when it is not in the store."""
        record, _ = await self._read(tenant, name)
        return record.info() if record else None

    async def delete(self, tenant: str, name: str) -> bool:
        """Remove every version for good (a purge leaves no old ciphertext in the stream); False if absent."""
        key = _key(tenant, name)
        try:
            await self._kv.get(key)
        except KeyNotFoundError:
            return False
        await self._kv.purge(key)
        return True

    async def sealed_record(self, tenant: str, name: str) -> bytes | None:
        """The secret's stored record as it is (every version sealed, no value readable without the
        master key), to keep beside a soft-deleted connector (hub.control.trash); None if absent."""
        record, _ = await self._read(tenant, name)
        return record.encode() if record else None

    async def put_sealed_record(self, tenant: str, name: str, data: bytes) -> bool:
        """Put back a record `sealed_record` returned, where the secret is absent; False if it exists.
        The versions' associated data names tenant, name and version, so a record only opens here."""
        record = _Record.decode(tenant, name, data)
        try:
            await self._kv.create(_key(tenant, name), record.encode())
        except KeyWrongLastSequenceError:
            return False
        return True

    async def _read(self, tenant: str, name: str) -> tuple[_Record | None, int | None]:
        """The current record and its revision, (None, None) when the key is absent, deleted or purged."""
        try:
            entry = await self._kv.get(_key(tenant, name))
        except KeyNotFoundError:
            return None, None
        return _Record.decode(tenant, name, entry.value or b""), entry.revision


class SecretCache:
    """The store's records as a KV watcher delivers them, for synchronous lookups in the running hub.

    Records stay sealed in memory; `resolve` opens one version when asked (AES-GCM is cheap), so no
    plaintext lingers here.
    """

    def __init__(self, master: MasterKey | None) -> None:
        self._master = master
        self._records: dict[tuple[str, str], _Record] = {}

    def apply(self, key: str, value: bytes | None) -> tuple[str, str] | None:
        """Take one KV update (None or empty value: deleted or purged); the (tenant, name) it changed.

        None when the key is not `<tenant>.<name>`. A malformed record is dropped with a warning, so a
        reference to it fails like a missing secret instead of using a stale value.
        """
        names = _split_key(key)
        if names is None:
            log.warning("ignoring a secrets bucket key that is not <tenant>.<name>", extra={"key": key})
            return None
        if not value:
            self._records.pop(names, None)
            return names
        try:
            self._records[names] = _Record.decode(*names, value)
        except SecretStoreError as exc:
            self._records.pop(names, None)
            log.warning("dropping a malformed secret record", extra={"key": key, "error": str(exc)})
        return names

    def resolve(self, tenant: str, name: str, version: int | None = None) -> bytes:
        """The plaintext of one version (None: the latest) of a secret."""
        record = self._records.get((tenant, name))
        if record is None:
            raise SecretNotFound(f"secret {name} of tenant {tenant} is not in the store")
        if version is None:
            stored = record.versions[-1]
        else:
            found = [v for v in record.versions if v.version == version]
            if not found:
                first, last = record.versions[0].version, record.versions[-1].version
                kept = f"{first}-{last}" if first != last else f"{first}"
                raise SecretNotFound(
                    f"secret {name} of tenant {tenant}: version {version} is not kept (versions kept: {kept})"
                )
            stored = found[0]
        if self._master is None:
            raise MasterKeyMissing
        return unseal(self._master, _aad(tenant, name, stored.version), stored.sealed)
