"""Two `connector-hub run` processes sharing one bus: a change made through one is served by the
other within a second, without a restart; a secret set through the API verifies webhooks and is
never seen in clear in a response, a log or the bus's storage."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub.app.embedded import RunningServer
from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, STATUS_BUCKET
from tests.hub.control.fixtures import AdminApi, ControlUnderTest, HubStarter, webhook_connector
from tests.hub.gate.harness import stream_messages

APPLY_DEADLINE_S = 1.0
RETRY_BOUND_S = 10.0
STORE_REF = [{"secretRef": {"source": "store", "name": "gh-signing"}}]


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


async def seconds_until(session: aiohttp.ClientSession, url: str, secret: bytes, status: int) -> float:
    """How long until a webhook gets `status` (bounded; retried back to back, no sleeping)."""
    started = time.monotonic()
    while time.monotonic() - started < RETRY_BOUND_S:
        if await send_github(session, url, secret) == status:
            return time.monotonic() - started
    raise AssertionError(f"{url} never answered {status} within {RETRY_BOUND_S}s")


@pytest.fixture
async def session() -> aiohttp.ClientSession:
    async with aiohttp.ClientSession() as client:
        yield client  # type: ignore[misc]


async def test_apply_through_one_hub_serves_on_the_other_within_a_second(
    control: ControlUnderTest, start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    first, second = await start_hub("first"), await start_hub("second")
    api = AdminApi(first.admin_url, session)
    key = control.keys["a"]
    secret = b"first-signing-secret"
    assert (await api.call("PUT", "/v1/secrets/a/gh-signing", key, {"value": secret.decode()})).status == 200
    hook = f"{second.http_url}/hooks/a/gh-live"
    assert await send_github(session, hook, secret) == 404

    created = await api.call("PUT", "/v1/connectors/a/gh-live", key, webhook_connector("a", "gh-live", STORE_REF))
    assert created.status == 201, created.body
    assert await seconds_until(session, hook, secret, 202) <= APPLY_DEADLINE_S

    disabled = webhook_connector("a", "gh-live", STORE_REF, enabled=False)
    disabled["metadata"]["revision"] = created.json()["revision"]
    assert (await api.call("PUT", "/v1/connectors/a/gh-live", key, disabled)).status == 200
    assert await seconds_until(session, hook, secret, 404) <= APPLY_DEADLINE_S
    assert await send_github(session, f"{first.http_url}/hooks/a/gh-live", secret) == 404

    status = await AdminApi(second.admin_url, session).call("GET", "/v1/connectors/a/gh-live/status", key)
    assert status.json()["state"] == "disabled"
    assert first.proc.poll() is None
    assert second.proc.poll() is None  # no restart in between


async def test_a_secret_set_through_the_api_verifies_webhooks_and_is_never_in_clear(
    control: ControlUnderTest,
    start_hub: HubStarter,
    session: aiohttp.ClientSession,
    nats_server: RunningServer,
) -> None:
    hub = await start_hub("only")
    api = AdminApi(hub.admin_url, session)
    key = control.keys["a"]
    old, new = b"old-value-6a1f3c9e2b7d", b"new-value-0d4e8b2a7c1f"
    await api.call("PUT", "/v1/secrets/a/gh-signing", key, {"value": old.decode()})
    rotation = [*STORE_REF, {"name": "pinned-v1", "secretRef": {"source": "store", "name": "gh-signing", "version": 1}}]
    reply = await api.call("PUT", "/v1/connectors/a/gh-live", key, webhook_connector("a", "gh-live", rotation))
    assert reply.status == 201, reply.body
    hook = f"{hub.http_url}/hooks/a/gh-live"
    await seconds_until(session, hook, old, 202)

    await api.call("PUT", "/v1/secrets/a/gh-signing", key, {"valueBase64": base64.b64encode(new).decode()})
    await seconds_until(session, hook, new, 202)  # the new version is picked up without a restart
    assert await send_github(session, hook, old) == 202  # the pinned old version keeps rotation working
    assert await send_github(session, hook, b"never-set") == 401

    listed = await api.call("GET", "/v1/secrets/a", key)
    assert [v["version"] for v in listed.json()["secrets"][0]["versions"]] == [1, 2]
    await api.call("GET", "/v1/connectors/a/gh-live", key)
    await api.call("GET", "/v1/connectors/service-map", key)

    hub.stop()  # its log is complete
    forms = [form for value in (old, new) for form in (value, base64.b64encode(value), value.hex().encode())]
    places: dict[str, bytes] = {f"response {i}": r.body for i, r in enumerate(api.replies)}
    places["hub log"] = hub.log()
    js = control.nc.jetstream()
    for bucket in (SECRETS_BUCKET, SPECS_BUCKET, STATUS_BUCKET):
        for message in await stream_messages(js, f"KV_{bucket}"):
            places[f"{bucket} {message.subject}"] = message.data + repr(message.headers).encode()
    await control.nc.flush()
    places.update(_files(nats_server.data_dir))
    assert len(places) > 10
    for where, content in places.items():
        for form in forms:
            assert form not in content, f"a secret value is in clear in {where}"


def _files(root: Path) -> dict[str, bytes]:
    """Every file of the nats-server's storage (the KV buckets and streams on disk)."""
    return {f"file {path}": path.read_bytes() for path in root.rglob("*") if path.is_file()}


async def test_wiping_a_secret_takes_its_connector_out_of_service(
    control: ControlUnderTest, start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("only")
    api = AdminApi(hub.admin_url, session)
    key = control.keys["a"]
    secret = b"soon-wiped"
    await api.call("PUT", "/v1/secrets/a/gh-signing", key, {"value": secret.decode()})
    await api.call("PUT", "/v1/connectors/a/gh-live", key, webhook_connector("a", "gh-live", STORE_REF))
    hook = f"{hub.http_url}/hooks/a/gh-live"
    await seconds_until(session, hook, secret, 202)
    assert (await api.call("DELETE", "/v1/secrets/a/gh-signing", key)).status == 200
    await seconds_until(session, hook, secret, 404)
    status = await api.call("GET", "/v1/connectors/a/gh-live/status", key)
    assert status.json()["state"] == "error"
    assert "gh-signing" in status.json()["lastError"]


async def test_deleting_a_connector_can_wipe_the_secrets_only_it_used(control: ControlUnderTest) -> None:
    api, key = control.api, control.keys["a"]
    for name in ("only-mine", "shared"):
        await api.call("PUT", f"/v1/secrets/a/{name}", key, {"value": "v"})
    refs = [{"secretRef": {"source": "store", "name": n}} for n in ("only-mine", "shared")]
    await api.call("PUT", "/v1/connectors/a/one", key, webhook_connector("a", "one", refs))
    await api.call("PUT", "/v1/connectors/a/two", key, webhook_connector("a", "two", refs[1:]))
    deleted = await api.call("DELETE", "/v1/connectors/a/one?wipeSecrets=true", key)
    assert (deleted.json()["wipedSecrets"], deleted.json()["keptSecrets"]) == (["only-mine"], ["shared"])
    assert [s.name for s in await control.plane.secrets.list("a")] == ["shared"]
    assert (await api.call("GET", "/v1/connectors/a/one", key)).status == 404
    no_wipe_scope = await control.key("a", ["connector.instance.manage"])
    refused = await api.call("DELETE", "/v1/connectors/a/two?wipeSecrets=true", no_wipe_scope)
    assert (refused.status, refused.json()["requiredScope"]) == (403, "connector.credential.manage")
    assert await control.plane.specs.connector("a", "two") is not None


async def test_insecure_no_auth_is_explicit_and_keeps_warning(
    start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("insecure", None, "--insecure-no-auth")
    warning = b"the admin API runs with --insecure-no-auth"
    assert hub.log().count(warning) == 1
    async with session.get(f"{hub.admin_url}/readyz") as response:
        ready = await response.json()
    assert any("--insecure-no-auth" in w for w in ready["warnings"])
    listed = await AdminApi(hub.admin_url, session).call("GET", "/v1/connectors")
    assert listed.status == 200
    hub.stop()
    assert hub.log().count(warning) == 2  # at start, and on the /readyz call


async def test_without_the_flag_every_admin_route_needs_a_key(
    start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("secure")
    assert (await AdminApi(hub.admin_url, session).call("GET", "/v1/connectors")).status == 401
    async with session.get(f"{hub.admin_url}/readyz") as response:
        assert "warnings" not in await response.json()


async def test_a_request_in_flight_during_a_change_completes_with_the_version_it_started_with(
    control: ControlUnderTest, start_hub: HubStarter, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("only")
    api, key = AdminApi(hub.admin_url, session), control.keys["a"]
    secret = b"in-flight-secret"
    await api.call("PUT", "/v1/secrets/a/gh-signing", key, {"value": secret.decode()})
    created = await api.call("PUT", "/v1/connectors/a/gh-live", key, webhook_connector("a", "gh-live", STORE_REF))
    hook = f"{hub.http_url}/hooks/a/gh-live"
    await seconds_until(session, hook, secret, 202)

    body = b'{"ref": "refs/heads/main", "after": "%s"}' % uuid.uuid4().hex.encode()
    first_half_sent, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield body[:10]
        first_half_sent.set()
        await release.wait()
        yield body[10:]

    headers = {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }

    async def send_slowly() -> int:
        async with session.post(hook, data=slow_body(), headers=headers) as response:
            return response.status

    in_flight = asyncio.create_task(send_slowly())
    await asyncio.wait_for(first_half_sent.wait(), 5.0)
    disabled = webhook_connector("a", "gh-live", STORE_REF, enabled=False)
    disabled["metadata"]["revision"] = created.json()["revision"]
    assert (await api.call("PUT", "/v1/connectors/a/gh-live", key, disabled)).status == 200
    await seconds_until(session, hook, secret, 404)  # new requests see the change ...
    release.set()
    assert await asyncio.wait_for(in_flight, 10.0) == 202  # ... the one under way is not dropped
