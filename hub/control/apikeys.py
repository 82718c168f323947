"""Admin API keys for the hub's `/v1/` API, kept in the `API_KEYS_BUCKET` KV bucket.

A key is bound to one tenant, or is an operator key (`tenant` is `OPERATOR`, i.e. None) that covers
every tenant. The token handed out once is `chk_<id>_<secret>`: the id is public and names the KV
entry, the secret is 256 random bits of which only a SHA-256 hash is stored, so reading the bucket
does not give anyone a usable token.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from events.envelope import rfc3339
from hub.control.buckets import current_entries

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = (
    "connector.catalog.read",
    "connector.instance.manage",
    "connector.operation.invoke",
    "connector.operation.read",
    "connector.credential.manage",
)

OPERATOR: Final = None
"""The `tenant` of an operator key, which covers every tenant."""


def reaches(key_tenant: str | None, tenant: str) -> bool:
    """Whether a key of `key_tenant` may act on `tenant`: an operator key on every tenant, others on
    their own only. The one rule the admin API's principal and the console's viewer both apply."""
    return key_tenant is OPERATOR or key_tenant == tenant


TOKEN_PREFIX = "chk_"  # noqa: S105 - the public prefix of every token, not a secret
_ID_HEX_CHARS = 16
_SECRET_BYTES = 32
_SECRET_CHARS = 43  # len(secrets.token_urlsafe(32)): 32 bytes in unpadded base64url
_ID = re.compile(rf"[0-9a-f]{{{_ID_HEX_CHARS}}}")
_TOKEN = re.compile(rf"{TOKEN_PREFIX}({_ID.pattern})_([A-Za-z0-9_-]{{{_SECRET_CHARS}}})")
_TENANT = re.compile(r"[a-z0-9-]{1,63}")


class ApiKeyError(ValueError):
    """A key cannot be created as asked: unknown scopes, no scopes, or a bad tenant."""


@dataclass(frozen=True)
class ApiKey:
    """One API key as stored, without its secret or hash."""

    id: str
    tenant: str | None
    scopes: frozenset[str]
    created_at: str
    description: str
    revoked_at: str | None

    def allows(self, scope: str) -> bool:
        """Whether the key grants `scope`; a revoked key grants nothing, whoever asks."""
        return self.revoked_at is None and scope in self.scopes

    def covers(self, tenant: str) -> bool:
        """Whether the key may act on `tenant` (`reaches`)."""
        return reaches(self.tenant, tenant)

    def to_dict(self) -> dict[str, Any]:
        """The listing form (camelCase); never holds the token or its hash."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "scopes": sorted(self.scopes),
            "createdAt": self.created_at,
            "description": self.description,
            "revokedAt": self.revoked_at,
        }


class ApiKeyStore:
    """Creates, authenticates, revokes and lists API keys in a KV bucket (key: the id)."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, tenant: str | None, scopes: Iterable[str], description: str = "") -> tuple[str, ApiKey]:
        """A new key: (its token, to be shown once and never again; its record)."""
        _check_tenant(tenant)
        key = ApiKey(
            id=secrets.token_hex(_ID_HEX_CHARS // 2),
            tenant=tenant,
            scopes=_checked_scopes(scopes),
            created_at=rfc3339(time.time()),
            description=description,
            revoked_at=None,
        )
        secret = secrets.token_urlsafe(_SECRET_BYTES)
        # `create`, not `put`: an id collision (64 random bits) fails instead of replacing another key.
        await self._kv.create(key.id, _encode(key, _digest(secret)))
        return f"{TOKEN_PREFIX}{key.id}_{secret}", key

    async def authenticate(self, token: str) -> ApiKey | None:
        """The live key the token belongs to, else None (malformed, unknown, wrong secret or revoked)."""
        match = _TOKEN.fullmatch(token)  # fixed-length pattern: never scans past 64 characters
        if match is None:
            return None
        key_id, secret = match.groups()
        try:
            found = await self._load(key_id)
        except ValueError:
            log.warning("API key record %s is corrupt: refusing its tokens", key_id)
            return None
        if found is None:
            return None
        key, digest, _ = found
        if not hmac.compare_digest(_digest(secret).encode(), digest.encode()) or key.revoked_at is not None:
            return None
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; None if there is none."""
        found = await self._load(key_id)
        return None if found is None else found[0]

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (its tokens stop working at once); None if unknown.

        Revoking again keeps the first `revoked_at`. The write is conditional on the revision read,
        so concurrent revocations end with one of them, not with the last writer's timestamp.
        """
        while True:
            found = await self._load(key_id)
            if found is None:
                return None
            key, digest, revision = found
            if key.revoked_at is not None:
                return key
            revoked = dataclasses.replace(key, revoked_at=rfc3339(time.time()))
            try:
                await self._kv.update(key_id, _encode(revoked, digest), last=revision)
            except KeyWrongLastSequenceError:
                continue  # written meanwhile: read it again
            return revoked

    async def list(self, tenant: str | None = None, *, include_revoked: bool = False) -> builtins.list[ApiKey]:
        """The keys of `tenant` (None: every key, operator keys included), oldest first.

        Read through `current_entries`: nats-py's `keys()` can end its listing before values the
        server already pushed, which read as no keys at all."""
        keys = [_decode(entry.key, entry.value)[0] for entry in await current_entries(self._kv) if entry.value]
        return sorted(
            (
                key
                for key in keys
                if (tenant is None or key.tenant == tenant) and (include_revoked or key.revoked_at is None)
            ),
            key=lambda key: (key.created_at, key.id),
        )

    async def _load(self, key_id: str) -> tuple[ApiKey, str, int | None] | None:
        """(key, stored hash, KV revision), or None when no such key; ValueError for a corrupt record."""
        if not _ID.fullmatch(key_id):
            return None  # also keeps KV wildcards and odd characters out of the subject
        try:
            entry = await self._kv.get(key_id)
        except KeyNotFoundError:
            return None
        key, digest = _decode(key_id, entry.value)
        return key, digest, entry.revision


def _digest(secret: str) -> str:
    """The stored form of a token's secret: hex SHA-256.

    A fast, unsalted hash is right here, unlike for passwords: a password is guessable, so its hash
    must be slow and salted to make a dictionary attack expensive. The secret is 256 bits from
    `secrets`, so there is no dictionary and brute force is out of reach at any hash speed; a slow
    KDF would only make every API request slower. The same secret never recurs, so a salt adds nothing.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_tenant(tenant: str | None) -> None:
    if tenant is not OPERATOR and not (isinstance(tenant, str) and _TENANT.fullmatch(tenant)):
        raise ApiKeyError(f"tenant {tenant!r} must be [a-z0-9-], 1-63 characters (or None for an operator key)")


def _checked_scopes(scopes: Iterable[str]) -> frozenset[str]:
    if isinstance(scopes, str):  # would otherwise be read as a set of one-letter scopes
        raise ApiKeyError("scopes must be a collection of scope names, not one string")
    granted = frozenset(scopes)
    unknown = sorted(granted.difference(SCOPES))
    if unknown:
        raise ApiKeyError(f"unknown scope(s): {', '.join(unknown)} (known: {', '.join(SCOPES)})")
    if not granted:
        raise ApiKeyError("a key needs at least one scope")
    return granted


def _encode(key: ApiKey, digest: str) -> bytes:
    return orjson.dumps({**key.to_dict(), "hash": digest})


def _decode(key_id: str, raw: bytes | None) -> tuple[ApiKey, str]:
    """The key and hash in a stored record; ValueError unless it is exactly what `_encode` writes."""
    record = orjson.loads(raw or b"null")
    if not isinstance(record, dict):
        raise ValueError(f"API key record {key_id} is not a JSON object")
    tenant, scopes, created_at = record.get("tenant"), record.get("scopes"), record.get("createdAt")
    description, revoked_at, digest = record.get("description"), record.get("revokedAt"), record.get("hash")
    if not (
        record.get("id") == key_id
        and (tenant is None or isinstance(tenant, str))
        and isinstance(scopes, list)
        and all(isinstance(scope, str) for scope in scopes)
        and isinstance(created_at, str)
        and isinstance(description, str)
        and (revoked_at is None or isinstance(revoked_at, str))
        and isinstance(digest, str)
    ):
        raise ValueError(f"API key record {key_id} is corrupt")
    return ApiKey(key_id, tenant, frozenset(scopes), created_at, description, revoked_at), digest
