"""Soft delete, restore and purge of connectors (hub/control/trash.py) through the admin API and the
control plane, on a real nats-server; serving is checked on a real `connector-hub run`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from events.envelope import rfc3339
from events.streams import AUDIT_STREAM, STREAMS
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.control.buckets import SECRETS_BUCKET, TRASH_BUCKET
from hub.control.plane import Actor
from hub.settings import Settings
from tests.conftest import wait_for
from tests.hub.control.fixtures import SIGNING_KEY, AdminApi, ControlUnderTest, HubStarter, webhook_connector
from tests.hub.gate.harness import stream_messages

STORE_REF = [{"secretRef": {"source": "store", "name": "gh-signing"}}]
SECRET = b"restorable-signing-secret"
RETRY_BOUND_S = 10.0


async def send_github(session: aiohttp.ClientSession, url: str, secret: bytes) -> int:
    """A GitHub `push` signed with `secret`; the status the hub answered."""
    body = b'{"ref": "refs/heads/main", "after": "%s"}' % uuid.uuid4().hex.encode()
    headers = {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    async with session.post(url, data=body, headers=headers) as response:
        return response.status


async def answers(session: aiohttp.ClientSession, url: str, secret: bytes, status: int) -> None:
    """Wait (bounded, retried back to back) until a signed webhook gets `status`."""
    started = time.monotonic()
    while time.monotonic() - started < RETRY_BOUND_S:
        if await send_github(session, url, secret) == status:
            return
    raise AssertionError(f"{url} never answered {status} within {RETRY_BOUND_S}s")


async def audit_trail(js: JetStreamContext, target: str) -> list[tuple[str, str]]:
    """(action, outcome) of every audit record about a connector or secret, in order."""
    records = [orjson.loads(m.data or b"") for m in await stream_messages(js, AUDIT_STREAM)]
    return [(r["action"], r["outcome"]) for r in records if r["target"] == target]


async def kv_stream_bytes(js: JetStreamContext, bucket: str) -> bytes:
    """Every message still stored in a KV bucket's stream, concatenated (values and markers)."""
    stream = f"KV_{bucket}"
    state = (await js.stream_info(stream)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            found.append((await js.get_msg(stream, seq)).data or b"")
        except NotFoundError:  # removed: the bucket keeps one message per key
            continue
    return b"".join(found)


async def add_connector(api: AdminApi, key: str, tenant: str = "a", name: str = "gh") -> None:
    assert (await api.call("PUT", f"/v1/secrets/{tenant}/gh-signing", key, {"value": SECRET.decode()})).status == 200
    created = await api.call("PUT", f"/v1/connectors/{tenant}/{name}", key, webhook_connector(tenant, name, STORE_REF))
    assert created.status == 201


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_a_deleted_connector_stops_serving_and_comes_back_with_its_secrets(
    control: ControlUnderTest, start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("hub")
    api, key = AdminApi(hub.admin_url, session), control.keys["a"]
    await add_connector(api, key)
    hook = f"{hub.http_url}/hooks/a/gh"
    await answers(session, hook, SECRET, 202)

    deleted = await api.call("DELETE", "/v1/connectors/a/gh", key)
    assert deleted.status == 200
    assert (deleted.json()["purged"], deleted.json()["trashedSecrets"]) == (False, ["gh-signing"])
    await answers(session, hook, SECRET, 404)
    assert await control.plane.secrets.list("a") == []  # moved into the trash entry
    listed = (await api.call("GET", "/v1/trash", key)).json()["deleted"]
    assert [(e["tenant"], e["name"], e["secrets"]) for e in listed] == [("a", "gh", ["gh-signing"])]

    restored = await api.call("POST", "/v1/connectors/a/gh:restore", key)
    assert restored.status == 200
    assert restored.json()["revision"] > deleted.json()["revision"]
    await answers(session, hook, SECRET, 202)  # the signed webhook verifies with the restored secret
    assert (await api.call("GET", "/v1/trash", key)).json()["deleted"] == []
    assert (await api.call("GET", "/v1/connectors/a/gh", key)).status == 200
    trail = await audit_trail(control.nc.jetstream(), "a/gh")
    assert trail[-2:] == [("connector_delete", "trashed"), ("connector_restore", "restored")]
    assert SECRET not in await kv_stream_bytes(control.nc.jetstream(), TRASH_BUCKET)


async def test_after_the_retention_the_purge_wipes_entry_and_secrets_once(control: ControlUnderTest) -> None:
    api, key, js = control.api, control.keys["a"], control.nc.jetstream()
    await add_connector(api, key)
    await api.call("DELETE", "/v1/connectors/a/gh", key)
    entry = await control.plane.trash.latest("a", "gh")
    assert entry is not None
    ciphertext = orjson.loads(entry.secrets[0][1])["versions"][0]["sealed"]["ciphertext"].encode()
    assert ciphertext in await kv_stream_bytes(js, TRASH_BUCKET)
    assert ciphertext not in await kv_stream_bytes(js, SECRETS_BUCKET)
    retention = timedelta(minutes=5)

    early = entry.deleted_at + retention - timedelta(seconds=1)
    assert await control.plane.purge_trash(early, retention) == []
    due = entry.deleted_at + retention
    two_instances = await asyncio.gather(*(control.plane.purge_trash(due, retention) for _ in range(2)))
    assert sorted(len(purged) for purged in two_instances) == [0, 1]

    assert await control.plane.trash.entries() == []
    assert ciphertext not in await kv_stream_bytes(js, TRASH_BUCKET)
    assert await control.plane.secrets.info("a", "gh-signing") is None
    assert (await api.call("POST", "/v1/connectors/a/gh:restore", key)).status == 404
    trail = await audit_trail(js, "a/gh")
    assert trail.count(("connector_purge", "purged")) == 1
    assert trail[-1] == ("connector_purge", "purged")


async def test_a_hub_with_the_admin_role_purges_expired_entries_on_its_own(
    control: ControlUnderTest, start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("purger", {"HUB_DELETED_RETENTION": "1s"})
    api, key = AdminApi(hub.admin_url, session), control.keys["a"]
    await add_connector(api, key)
    assert (await api.call("DELETE", "/v1/connectors/a/gh", key)).status == 200

    async def purged() -> bool:
        return ("connector_purge", "purged") in await audit_trail(control.nc.jetstream(), "a/gh")

    await wait_for(purged, timeout=10.0, what="the hub's periodic purge")
    assert await control.plane.trash.entries() == []
    assert await control.plane.secrets.info("a", "gh-signing") is None


async def test_restore_is_refused_after_the_retention_even_before_the_purge(control: ControlUnderTest) -> None:
    await add_connector(control.api, control.keys["a"])
    await control.api.call("DELETE", "/v1/connectors/a/gh", control.keys["a"])
    entry = await control.plane.trash.latest("a", "gh")
    assert entry is not None
    retention = timedelta(hours=1)
    late = entry.deleted_at + retention
    assert await control.plane.restore_connector("a", "gh", Actor("test"), retention=retention, now=late) is None
    assert await control.plane.specs.connector("a", "gh") is None


async def test_purge_deletes_and_wipes_at_once_with_the_credential_scope(control: ControlUnderTest) -> None:
    api, key = control.api, control.keys["a"]
    await add_connector(api, key)
    instance_only = await control.key("a", ["connector.instance.manage"])
    refused = await api.call("DELETE", "/v1/connectors/a/gh?purge=true", instance_only)
    assert (refused.status, refused.json()["requiredScope"]) == (403, "connector.credential.manage")

    purged = await api.call("DELETE", "/v1/connectors/a/gh?purge=true", key)
    assert (purged.status, purged.json()["purged"], purged.json()["wipedSecrets"]) == (200, True, ["gh-signing"])
    assert await control.plane.trash.entries("a") == []
    assert await control.plane.secrets.info("a", "gh-signing") is None
    assert (await api.call("POST", "/v1/connectors/a/gh:restore", key)).status == 404
    trail = await audit_trail(control.nc.jetstream(), "a/gh")
    assert trail[-1] == ("connector_delete", "purged")
    assert ("secret_wipe", "wiped") in await audit_trail(control.nc.jetstream(), "a/gh-signing")


async def test_restoring_over_a_name_or_secret_that_exists_again_is_a_conflict(control: ControlUnderTest) -> None:
    api, key = control.api, control.keys["a"]
    await add_connector(api, key)
    await api.call("DELETE", "/v1/connectors/a/gh", key)
    await add_connector(api, key)  # the name and its secret exist again

    name_taken = await api.call("POST", "/v1/connectors/a/gh:restore", key)
    assert (name_taken.status, name_taken.json()["code"]) == (409, "restore_conflict")
    assert "connector a/gh exists again" in name_taken.json()["message"]

    await api.call("DELETE", "/v1/connectors/a/gh?purge=true", key)
    await api.call("PUT", "/v1/secrets/a/gh-signing", key, {"value": "another"})
    secret_taken = await api.call("POST", "/v1/connectors/a/gh:restore", key)
    assert secret_taken.status == 409
    assert "secret gh-signing of tenant a exists again" in secret_taken.json()["message"]
    assert await control.plane.trash.latest("a", "gh") is not None  # still restorable once it is out of the way

    await api.call("DELETE", "/v1/secrets/a/gh-signing", key)
    assert (await api.call("POST", "/v1/connectors/a/gh:restore", key)).status == 200
    trail = await audit_trail(control.nc.jetstream(), "a/gh")
    assert trail.count(("connector_restore", "conflict")) == 2
    assert trail[-1] == ("connector_restore", "restored")


async def test_a_secret_left_in_the_store_by_an_interrupted_delete_does_not_block_the_restore(
    control: ControlUnderTest,
) -> None:
    api, key = control.api, control.keys["a"]
    await add_connector(api, key)
    await api.call("DELETE", "/v1/connectors/a/gh", key)
    entry = await control.plane.trash.latest("a", "gh")
    assert entry is not None
    assert await control.plane.secrets.put_sealed_record("a", "gh-signing", entry.secrets[0][1])  # as never moved
    assert (await api.call("POST", "/v1/connectors/a/gh:restore", key)).status == 200
    info = await control.plane.secrets.info("a", "gh-signing")
    assert info is not None
    assert [v.version for v in info.versions] == [1]


async def test_another_tenants_deleted_connectors_are_like_missing_ones(control: ControlUnderTest) -> None:
    api = control.api
    await add_connector(api, control.keys["a"])
    assert (await api.call("DELETE", "/v1/connectors/a/gh", control.keys["b"])).status == 404
    await api.call("DELETE", "/v1/connectors/a/gh", control.keys["a"])

    foreign = await api.call("POST", "/v1/connectors/a/gh:restore", control.keys["b"])
    missing = await api.call("POST", "/v1/connectors/b/gh:restore", control.keys["b"])
    assert (foreign.status, foreign.json()["code"]) == (404, "not_found")
    assert {k: v for k, v in foreign.json().items() if k != "requestId"} == {
        k: v for k, v in missing.json().items() if k != "requestId"
    }
    assert (await api.call("GET", "/v1/trash", control.keys["b"])).json()["deleted"] == []
    assert (await api.call("GET", "/v1/trash?tenant=a", control.keys["b"])).status == 404
    operator = (await api.call("GET", "/v1/trash", control.keys["operator"])).json()["deleted"]
    assert [(e["tenant"], e["name"]) for e in operator] == [("a", "gh")]
    assert await control.plane.trash.latest("a", "gh") is not None


@pytest.fixture
async def admin_with_bus(control: ControlUnderTest) -> AsyncIterator[AdminApi]:
    """The admin API with the bus connection (for the streams' sizes) and a 2-day deleted retention."""
    settings = Settings(deleted_retention=timedelta(days=2))
    admin = AdminContext(control.plane, "http://hub.test", SIGNING_KEY, 300, nc=control.nc, settings=settings)
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield AdminApi(f"http://{host}:{port}", control.api.session)
    finally:
        await runner.cleanup()


async def test_retention_shows_each_stream_and_the_deleted_retention(
    control: ControlUnderTest, admin_with_bus: AdminApi
) -> None:
    await add_connector(admin_with_bus, control.keys["a"])
    deleted = await admin_with_bus.call("DELETE", "/v1/connectors/a/gh", control.keys["a"])
    until = deleted.json()["restorableUntil"]
    entry = await control.plane.trash.latest("a", "gh")
    assert entry is not None
    assert until == rfc3339(entry.deleted_at + timedelta(days=2))

    report = await admin_with_bus.call("GET", "/v1/retention", control.keys["operator"])
    assert report.status == 200
    rows: dict[str, Any] = {row["stream"]: row for row in report.json()["streams"]}
    assert set(rows) == set(STREAMS)
    assert (rows[AUDIT_STREAM]["maxAge"], rows[AUDIT_STREAM]["exists"]) == ("90d", True)
    audit_count = (await control.nc.jetstream().stream_info(AUDIT_STREAM)).state.messages
    assert 0 < rows[AUDIT_STREAM]["messages"] <= audit_count
    assert report.json()["deletedConnectors"] == {"retention": "2d", "retentionSeconds": 172800.0, "kept": 1}
    tenant = await admin_with_bus.call("GET", "/v1/retention", control.keys["a"])
    assert (tenant.status, tenant.json()["code"]) == (403, "operator_only")


def test_the_audit_retention_cannot_go_below_its_floor() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(audit_max_age=timedelta(days=10))
    message = str(refused.value)
    assert "HUB_AUDIT_MAX_AGE (10d) is below HUB_AUDIT_MIN_AGE (30d)" in message
    assert Settings(audit_max_age=timedelta(days=10), audit_min_age=timedelta(days=7)).audit_max_age.days == 10
    assert Settings().deleted_retention == timedelta(days=7)
