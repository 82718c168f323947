"""The write-only secret store against a real nats-server: versions, concurrency, pruning, purge, cache."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import orjson
import pytest
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from hub.app.embedded import RunningServer
from hub.control.buckets import SECRETS_BUCKET, kv_bucket, secret_key
from hub.control.sealing import MasterKey, SealingError
from hub.control.secretstore import (
    KEEP_VERSIONS,
    MasterKeyMissing,
    SecretCache,
    SecretInfo,
    SecretNotFound,
    SecretStore,
    SecretVersionInfo,
)

pytestmark = pytest.mark.integration

PLAINTEXT = b"s3cr3t-value-XYZ"
MASTER = MasterKey(bytes(range(32)))


@pytest.fixture
async def nc(nats_server: RunningServer) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_server.url, allow_reconnect=False)
    yield client
    await client.close()


@pytest.fixture
async def kv(nc: NATS) -> KeyValue:
    return await kv_bucket(nc.jetstream(), SECRETS_BUCKET, history=1)


@pytest.fixture
def store(kv: KeyValue) -> SecretStore:
    return SecretStore(kv, MASTER)


async def cached(kv: KeyValue, tenant: str, *names: str, master: MasterKey | None = MASTER) -> SecretCache:
    """A cache fed with the current entries of these secrets, the way the hub's watcher feeds it."""
    cache = SecretCache(master)
    for name in names:
        entry = await kv.get(secret_key(tenant, name))
        assert cache.apply(entry.key, entry.value) == (tenant, name)
    return cache


def plaintext_forms(value: bytes) -> list[bytes]:
    return [value, base64.b64encode(value), base64.urlsafe_b64encode(value), value.hex().encode()]


async def test_set_then_list_shows_versions_and_times_but_no_value(store: SecretStore) -> None:
    before = datetime.now(UTC)
    first = await store.set("acme", "gh-secret", PLAINTEXT)
    second = await store.set("acme", "gh-secret", b"s3cr3t-value-XYZ-2")

    listed = await store.list("acme")
    info = await store.info("acme", "gh-secret")

    assert (first.version, second.version) == (1, 2)
    assert listed == [SecretInfo("acme", "gh-secret", (first, second))]
    assert info == listed[0]
    for version in (first, second):
        assert version.created_at.endswith("Z")
        assert datetime.fromisoformat(version.created_at) >= before.replace(microsecond=0)
    assert info.to_dict() == {
        "name": "gh-secret",
        "versions": [{"version": 1, "createdAt": first.created_at}, {"version": 2, "createdAt": second.created_at}],
        "updatedAt": second.created_at,
    }
    shown = orjson.dumps([i.to_dict() for i in listed]) + repr(listed).encode() + repr(info).encode()
    for form in plaintext_forms(PLAINTEXT):
        assert form not in shown


async def test_the_stored_entry_holds_no_plaintext(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", PLAINTEXT)

    raw = (await kv.get(secret_key("acme", "gh-secret"))).value

    assert raw is not None
    for form in plaintext_forms(PLAINTEXT):
        assert form not in raw
    record = orjson.loads(raw)
    assert (record["tenant"], record["name"], [v["version"] for v in record["versions"]]) == ("acme", "gh-secret", [1])
    assert record["versions"][0]["sealed"]["masterKeyId"] == MASTER.key_id


async def test_list_is_per_tenant_and_sorted(store: SecretStore) -> None:
    assert await store.list("acme") == []  # an empty bucket
    for tenant, name in [("acme", "zeta"), ("acme", "alpha"), ("xacme", "other"), ("acme-2", "other"), ("b", "acme")]:
        await store.set(tenant, name, PLAINTEXT)

    assert [info.name for info in await store.list("acme")] == ["alpha", "zeta"]
    assert await store.list("nobody") == []
    assert await store.info("acme", "missing") is None


async def test_concurrent_sets_both_land_as_distinct_versions(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", b"one")

    results = await asyncio.gather(
        store.set("acme", "gh-secret", b"two-or-three-a"), store.set("acme", "gh-secret", b"two-or-three-b")
    )
    fresh = await asyncio.gather(store.set("acme", "new", b"first-a"), store.set("acme", "new", b"first-b"))

    assert {r.version for r in results} == {2, 3}
    assert {r.version for r in fresh} == {1, 2}
    info = await store.info("acme", "gh-secret")
    assert info is not None
    assert [v.version for v in info.versions] == [1, 2, 3]
    cache = await cached(kv, "acme", "gh-secret", "new")
    assert {cache.resolve("acme", "gh-secret", 2), cache.resolve("acme", "gh-secret", 3)} == {
        b"two-or-three-a",
        b"two-or-three-b",
    }
    assert {cache.resolve("acme", "new", 1), cache.resolve("acme", "new", 2)} == {b"first-a", b"first-b"}


async def test_only_the_newest_versions_are_kept(store: SecretStore, kv: KeyValue) -> None:
    for n in range(1, KEEP_VERSIONS + 3):
        await store.set("acme", "gh-secret", f"value-{n}".encode())

    info = await store.info("acme", "gh-secret")
    cache = await cached(kv, "acme", "gh-secret")

    assert info is not None
    assert [v.version for v in info.versions] == list(range(3, KEEP_VERSIONS + 3))
    assert cache.resolve("acme", "gh-secret", 3) == b"value-3"
    with pytest.raises(SecretNotFound) as caught:
        cache.resolve("acme", "gh-secret", 2)
    assert str(caught.value) == (
        f"secret gh-secret of tenant acme: version 2 is not kept (versions kept: 3-{KEEP_VERSIONS + 2})"
    )


async def test_delete_purges_every_revision(nc: NATS) -> None:
    kv = await kv_bucket(nc.jetstream(), "secrets_with_history", history=5)
    store = SecretStore(kv, MASTER)
    for n in range(3):
        await store.set("acme", "gh-secret", PLAINTEXT + bytes([n]))
    key = secret_key("acme", "gh-secret")
    assert len(await kv.history(key)) == 3

    assert await store.delete("acme", "gh-secret") is True

    with pytest.raises(KeyNotFoundError):
        await kv.get(key)
    assert [(e.operation, e.value) for e in await kv.history(key)] == [("PURGE", b"")]
    assert await store.delete("acme", "gh-secret") is False
    assert await store.info("acme", "gh-secret") is None
    assert await store.list("acme") == []
    assert (await store.set("acme", "gh-secret", PLAINTEXT)).version == 1


async def test_delete_of_an_unknown_secret_is_false(store: SecretStore) -> None:
    assert await store.delete("acme", "never-set") is False


async def test_the_cache_resolves_latest_and_pinned_versions(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", b"old-value")
    await store.set("acme", "gh-secret", PLAINTEXT)

    cache = await cached(kv, "acme", "gh-secret")

    assert cache.resolve("acme", "gh-secret") == PLAINTEXT
    assert cache.resolve("acme", "gh-secret", 2) == PLAINTEXT
    assert cache.resolve("acme", "gh-secret", 1) == b"old-value"
    with pytest.raises(SecretNotFound) as caught:
        cache.resolve("acme", "other")
    assert str(caught.value) == "secret other of tenant acme is not in the store"
    with pytest.raises(SecretNotFound, match="version 3 is not kept"):
        cache.resolve("acme", "gh-secret", 3)


async def test_the_cache_follows_deletes_and_ignores_foreign_keys(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", PLAINTEXT)
    cache = await cached(kv, "acme", "gh-secret")

    assert cache.apply("not-a-secret-key", b"{}") is None
    assert cache.apply("Acme.gh-secret", b"{}") is None
    assert cache.apply("acme.gh-secret", None) == ("acme", "gh-secret")

    with pytest.raises(SecretNotFound):
        cache.resolve("acme", "gh-secret")


async def test_a_malformed_record_is_dropped_without_logging_it(
    store: SecretStore, kv: KeyValue, caplog: pytest.LogCaptureFixture
) -> None:
    await store.set("acme", "gh-secret", PLAINTEXT)
    cache = await cached(kv, "acme", "gh-secret")
    garbage = b'{"tenant": "acme", "name": "gh-secret", "versions": "s3cr3t-garbage"}'

    assert cache.apply("acme.gh-secret", garbage) == ("acme", "gh-secret")

    with pytest.raises(SecretNotFound):
        cache.resolve("acme", "gh-secret")
    logged = " ".join(str(vars(record)) for record in caplog.records)  # the message and its extras
    assert "malformed" in logged
    assert "s3cr3t-garbage" not in logged


async def test_a_record_copied_to_another_name_does_not_decrypt(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", PLAINTEXT)
    raw = (await kv.get(secret_key("acme", "gh-secret"))).value
    assert raw is not None
    copied = orjson.loads(raw) | {"tenant": "evil", "name": "stolen"}
    cache = SecretCache(MASTER)

    cache.apply(secret_key("evil", "stolen"), orjson.dumps(copied))

    with pytest.raises(SealingError, match="cannot decrypt"):
        cache.resolve("evil", "stolen")


async def test_another_master_key_cannot_open_a_secret(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", PLAINTEXT)
    other = MasterKey(bytes(32))

    cache = await cached(kv, "acme", "gh-secret", master=other)

    with pytest.raises(SealingError, match=f"sealed with master key {MASTER.key_id}, this hub has {other.key_id}"):
        cache.resolve("acme", "gh-secret")


async def test_without_a_master_key_nothing_is_sealed_or_opened(store: SecretStore, kv: KeyValue) -> None:
    await store.set("acme", "gh-secret", PLAINTEXT)
    keyless = SecretStore(kv, None)

    with pytest.raises(MasterKeyMissing) as caught:
        await keyless.set("acme", "gh-secret", PLAINTEXT)
    cache = await cached(kv, "acme", "gh-secret", master=None)
    with pytest.raises(MasterKeyMissing):
        cache.resolve("acme", "gh-secret")

    assert str(caught.value) == (
        "HUB_MASTER_KEY (or HUB_MASTER_KEY_FILE) is not set: the secret store cannot encrypt or decrypt"
    )
    assert [info.name for info in await keyless.list("acme")] == ["gh-secret"]  # listing needs no key
    info = await keyless.info("acme", "gh-secret")
    assert info is not None
    assert info.versions == (SecretVersionInfo(1, info.versions[0].created_at),)


async def test_bad_input_is_refused_before_anything_is_written(store: SecretStore) -> None:
    with pytest.raises(ValueError, match="a secret value cannot be empty"):
        await store.set("acme", "gh-secret", b"")
    with pytest.raises(ValueError, match="invalid secret name"):
        await store.set("acme", "a.b", PLAINTEXT)
    with pytest.raises(ValueError, match="invalid tenant"):
        await store.list("acme.*")

    assert await store.list("acme") == []
