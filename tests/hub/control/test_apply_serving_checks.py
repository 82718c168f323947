"""The admin API refuses (PUT 422, `:validate` and `:diff` naming the field) a connector no instance would
serve: a replay window the duplicate window cannot cover, a webhook connector with no secret, and a store
secret while the hub has no master key to read it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.control.checks import ServingLimits
from hub.control.plane import Actor, ControlPlane
from tests.hub.control.fixtures import SIGNING_KEY, AdminApi, ControlUnderTest, webhook_connector

ENV_REF = [{"secretRef": {"source": "env", "name": "ONLY_ON_THE_INSTANCES"}}]
STORE_REF = [{"secretRef": {"source": "store", "name": "gh-signing"}}]

REFUSED = [
    pytest.param(
        webhook_connector("a", "gh", ENV_REF, webhook={"replayWindow": "600s"}),
        "spec.webhook.replayWindow",
        "twice the replay window (600s)",
        id="replay-window",
    ),
    pytest.param(webhook_connector("a", "gh", []), "spec.secrets", "needs at least one secret", id="no-secret"),
]


async def serve_admin(admin: AdminContext, api: AdminApi) -> AsyncIterator[AdminApi]:
    """`admin` served on loopback, called with the same client session as `api`."""
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield AdminApi(f"http://{host}:{port}", api.session)
    finally:
        await runner.cleanup()


@pytest.fixture
async def keyless(control: ControlUnderTest) -> AsyncIterator[AdminApi]:
    """The admin API of a hub without a master key, on the same bus (so the same keys and secrets)."""
    plane = await ControlPlane.open(control.nc.jetstream(), None)
    async for api in serve_admin(AdminContext(plane, "http://hub.test", SIGNING_KEY, 300), control.api):
        yield api


@pytest.fixture
async def long_window(control: ControlUnderTest) -> AsyncIterator[AdminApi]:
    """The admin API of a hub whose duplicate window is an hour."""
    admin = AdminContext(control.plane, "http://hub.test", SIGNING_KEY, 300, limits=ServingLimits(3600.0, 30.0))
    async for api in serve_admin(admin, control.api):
        yield api


def fields(reply_json: dict[str, Any]) -> list[str]:
    return [p["field"] for p in reply_json["problems"]]


@pytest.mark.parametrize(("document", "field", "message"), REFUSED)
async def test_put_refuses_what_no_instance_would_serve(
    control: ControlUnderTest, document: dict[str, Any], field: str, message: str
) -> None:
    reply = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["operator"], document)
    assert (reply.status, reply.json()["code"], fields(reply.json())) == (422, "invalid_spec", [field])
    assert message in reply.json()["problems"][0]["message"]
    assert await control.plane.specs.connector("a", "gh") is None


@pytest.mark.parametrize(("document", "field", "message"), REFUSED)
async def test_validate_and_diff_report_what_no_instance_would_serve(
    control: ControlUnderTest, document: dict[str, Any], field: str, message: str
) -> None:
    checked = await control.api.call("POST", "/v1/connectors:validate", control.keys["operator"], document)
    assert (checked.status, checked.json()["valid"], fields(checked.json())) == (200, False, [field])
    assert message in checked.json()["problems"][0]["message"]
    diffed = await control.api.call("POST", "/v1/connectors:diff", control.keys["operator"], document)
    assert (diffed.status, fields(diffed.json())) == (422, [field])


async def test_the_duplicate_window_is_the_hubs_own(long_window: AdminApi, control: ControlUnderTest) -> None:
    document = webhook_connector("a", "gh", ENV_REF, webhook={"replayWindow": "600s"})
    reply = await long_window.call("PUT", "/v1/connectors/a/gh", control.keys["operator"], document)
    assert reply.status == 201, reply.body


async def test_a_hub_without_a_master_key_refuses_store_secrets(keyless: AdminApi, control: ControlUnderTest) -> None:
    await control.plane.set_secret("a", "gh-signing", b"stored-by-a-keyed-instance", Actor("test"))
    document = webhook_connector("a", "gh", STORE_REF)
    checked = await keyless.call("POST", "/v1/connectors:validate", control.keys["operator"], document)
    assert (checked.status, checked.json()["valid"], fields(checked.json())) == (200, False, ["spec.secrets[0]"])
    assert "HUB_MASTER_KEY" in checked.json()["problems"][0]["message"]
    reply = await keyless.call("PUT", "/v1/connectors/a/gh", control.keys["operator"], document)
    assert (reply.status, fields(reply.json())) == (422, ["spec.secrets[0]"])
    assert "HUB_MASTER_KEY" in reply.json()["problems"][0]["message"]
    assert await control.plane.specs.connector("a", "gh") is None
    assert (await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["operator"], document)).status == 201
