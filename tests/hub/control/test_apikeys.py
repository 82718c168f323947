"""API keys against a real nats-server: tokens, hashes at rest, revocation, scopes and tenants."""

from __future__ import annotations

import asyncio
import hashlib
import string
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.kv import KeyValue

from hub.app.embedded import RunningServer
from hub.control.apikeys import OPERATOR, SCOPES, ApiKeyError, ApiKeyStore, reaches
from hub.control.buckets import API_KEYS_BUCKET, kv_bucket

READ = "connector.catalog.read"
INVOKE = "connector.operation.invoke"


@pytest.fixture
async def kv(nats_server: RunningServer) -> AsyncIterator[KeyValue]:
    nc = await nats.connect(nats_server.url)
    try:
        yield await kv_bucket(nc.jetstream(), API_KEYS_BUCKET)
    finally:
        await nc.close()


@pytest.fixture
def store(kv: KeyValue) -> ApiKeyStore:
    return ApiKeyStore(kv)


async def test_a_new_token_authenticates_as_its_key(store: ApiKeyStore) -> None:
    token, key = await store.create("acme", [READ, INVOKE], "ci pipeline")

    assert token.startswith(f"chk_{key.id}_")
    assert key.tenant == "acme"
    assert key.scopes == {READ, INVOKE}
    assert key.description == "ci pipeline"
    assert key.revoked_at is None
    assert key.created_at.endswith("Z")
    authenticated = await store.authenticate(token)
    assert authenticated == key
    assert authenticated.allows(READ)
    assert authenticated.allows(INVOKE)
    assert not authenticated.allows("connector.credential.manage")
    assert await store.get(key.id) == key


async def test_every_single_changed_character_is_refused(store: ApiKeyStore) -> None:
    token, _ = await store.create("acme", [READ])

    for position, char in enumerate(token):
        alphabet = string.hexdigits.lower() if char in string.hexdigits.lower() else string.ascii_letters
        replacement = next(c for c in alphabet if c != char)
        tampered = token[:position] + replacement + token[position + 1 :]
        assert await store.authenticate(tampered) is None, f"accepted with position {position} changed"
    assert await store.authenticate(token) is not None


async def test_malformed_tokens_are_refused_without_raising(store: ApiKeyStore) -> None:
    token, key = await store.create("acme", [READ])
    secret = token.removeprefix(f"chk_{key.id}_")

    malformed = [
        "",
        "chk_",
        f"Bearer {token}",
        f"chx_{key.id}_{secret}",
        f"chk_{key.id.upper()}_{secret}",
        f"chk_{key.id}-{secret}",
        token[:-1],
        token + "A",
        token + "\n",
        f"chk_{'0' * 16}_{secret}",  # well formed, unknown id
        f"chk_{'>' * 16}_{secret}",  # a KV wildcard where the id goes
        f"chk_{key.id}_{'é' * 43}",
        "chk_" + "a" * 10_000_000,
    ]
    for candidate in malformed:
        assert await store.authenticate(candidate) is None, candidate[:80]
    assert await store.authenticate(token) == key


async def test_a_corrupt_record_fails_closed(store: ApiKeyStore, kv: KeyValue) -> None:
    token, key = await store.create("acme", [READ])
    await kv.put(key.id, b'{"id": "' + key.id.encode() + b'", "hash": 42}')

    assert await store.authenticate(token) is None
    with pytest.raises(ValueError, match="corrupt"):
        await store.get(key.id)


async def test_a_revoked_key_stops_authenticating_and_leaves_the_listing(store: ApiKeyStore) -> None:
    token, key = await store.create("acme", [READ])
    other_token, other = await store.create("acme", [READ])

    revoked = await store.revoke(key.id)

    assert revoked is not None
    assert revoked.revoked_at is not None
    assert not revoked.allows(READ)
    assert await store.authenticate(token) is None
    assert await store.authenticate(other_token) == other
    assert await store.get(key.id) == revoked
    assert await store.list() == [other]
    assert set(await store.list(include_revoked=True)) == {revoked, other}
    assert await store.revoke(key.id) == revoked, "revoking again keeps the first revocation time"
    assert await store.revoke("0" * 16) is None
    assert await store.revoke("not an id") is None


async def test_concurrent_revocations_agree_on_one_revocation(store: ApiKeyStore) -> None:
    _, key = await store.create("acme", [READ])

    results = await asyncio.gather(*(store.revoke(key.id) for _ in range(8)))

    stored = await store.get(key.id)
    assert stored is not None
    assert stored.revoked_at is not None
    assert set(results) == {stored}


async def test_only_a_hash_of_the_secret_is_stored(store: ApiKeyStore, kv: KeyValue) -> None:
    token, key = await store.create("acme", [READ])
    secret = token.removeprefix(f"chk_{key.id}_")

    entry = await kv.get(key.id)

    assert entry.value is not None
    assert secret.encode() not in entry.value
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in entry.value
    assert set(key.to_dict()) == {"id", "tenant", "scopes", "createdAt", "description", "revokedAt"}


async def test_bad_input_is_refused_and_stores_nothing(store: ApiKeyStore) -> None:
    with pytest.raises(ApiKeyError, match=r"unknown scope\(s\): connector\.everything, root") as unknown:
        await store.create("acme", [READ, "root", "connector.everything"])
    assert READ not in str(unknown.value).split("(known")[0]
    with pytest.raises(ApiKeyError, match="at least one scope"):
        await store.create("acme", [])
    with pytest.raises(ApiKeyError, match="not one string"):
        await store.create("acme", READ)
    for tenant in ["", "Acme", "a" * 64, "acme.prod", "acme\n", "*"]:
        with pytest.raises(ApiKeyError, match="tenant"):
            await store.create(tenant, [READ])

    assert await store.list(include_revoked=True) == []


async def test_an_operator_key_covers_every_tenant_and_a_tenant_key_its_own(store: ApiKeyStore) -> None:
    operator_token, _ = await store.create(OPERATOR, SCOPES, "on-call")
    tenant_token, _ = await store.create("acme", [READ])

    operator = await store.authenticate(operator_token)
    tenant = await store.authenticate(tenant_token)

    assert operator is not None
    assert tenant is not None
    assert operator.tenant is None
    assert all(operator.allows(scope) for scope in SCOPES)
    assert operator.covers("acme")
    assert operator.covers("globex")
    assert tenant.covers("acme")
    assert not tenant.covers("globex")
    assert not tenant.covers("acme-prod")


async def test_listing_filters_by_tenant(store: ApiKeyStore) -> None:
    assert await store.list() == [], "an empty bucket lists nothing"
    _, acme = await store.create("acme", [READ])
    _, globex = await store.create("globex", [READ])
    _, operator = await store.create(OPERATOR, [READ])

    assert await store.list("acme") == [acme]
    assert await store.list("globex") == [globex]
    assert await store.list("initech") == []
    assert set(await store.list()) == {acme, globex, operator}


def test_an_operator_key_reaches_every_tenant_and_a_tenant_key_its_own_only() -> None:
    assert reaches(OPERATOR, "acme")
    assert reaches("acme", "acme")
    assert not reaches("acme", "globex")
    assert not reaches("acme", "acme-2")
