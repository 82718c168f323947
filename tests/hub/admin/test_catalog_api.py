"""`GET /v1/catalog` on a real nats-server, and the type refusals wherever a spec meets the hub: at
apply (PUT answers 422 naming the replacement or the served version) and when the hub builds it
(a spec stored before its type was retired is not served; its status says why)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from types import MappingProxyType
from typing import Any

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web

from adapters import registry
from adapters.lifecycle import Lifecycle
from adapters.registry import POLLERS, WEBHOOK_PROVIDERS
from events.streams import AUDIT_STREAM, ensure_streams
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, kv_bucket
from hub.control.checks import ServingLimits
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from hub.control.secretstore import SecretCache
from hub.control.status import StatusChange
from hub.control.watcher import ConfigWatcher
from hub.errors import ConfigError
from hub.ingest.connectors import build_connector
from hub.poll.sources import build_source
from hub.settings import Settings
from schemas.connector import ConnectorDocument
from tests.adapters.test_lifecycle import LegacyHooks, register_test_types
from tests.conftest import wait_for
from tests.hub.control.fixtures import MASTER_KEY, SIGNING_KEY, AdminApi, ControlUnderTest
from tests.hub.gate.harness import stream_messages

pytestmark = pytest.mark.integration

DISABLED = ("github", "rss")
SECRET = [{"secretRef": {"source": "store", "name": "s"}}]


@pytest.fixture
async def hub(nats_server: RunningServer) -> AsyncIterator[ControlUnderTest]:
    """The admin API of a hub with HUB_DISABLED_PROVIDERS=github,rss; keys `a` (tenant a, every
    scope), `a-ops` (tenant a, operation.read only) and `operator`; tenant a has the store secret `s`."""
    settings = Settings(disabled_providers=DISABLED)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, settings.stream_settings())
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    admin = AdminContext(
        plane, "http://hub.test", SIGNING_KEY, 300, limits=ServingLimits.of(settings), nc=nc, settings=settings
    )
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    session = aiohttp.ClientSession()
    under_test = ControlUnderTest(nc, plane, AdminApi(f"http://{host}:{port}", session), {}, None)  # type: ignore[arg-type]
    under_test.keys = {
        "a": await under_test.key("a"),
        "a-ops": await under_test.key("a", ["connector.operation.read"]),
        "operator": await under_test.key(None),
    }
    await plane.set_secret("a", "s", b"a signing secret", Actor("test"))
    try:
        yield under_test
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()


def webhook(provider: str, pin: str | None = None, name: str = "hooks") -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "webhook", "provider": provider, "secrets": SECRET}
    if pin is not None:
        spec["typeVersion"] = pin
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": name, "tenant": "a"}, "spec": spec}


def feed(kind: str) -> dict[str, Any]:
    poll = {"kind": kind, "interval": "5m", "request": {"url": "https://example.com/feed.xml"}}
    spec = {"type": "poll", "provider": "feed", "poll": poll}
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": "feed", "tenant": "a"}, "spec": spec}


async def test_the_catalog_lists_every_type_with_what_this_hub_serves(hub: ControlUnderTest) -> None:
    reply = await hub.api.call("GET", "/v1/catalog", hub.keys["a"])
    assert reply.status == 200, reply.body
    entries = {entry["name"]: entry for entry in reply.json()["types"]}
    assert set(entries) == set(WEBHOOK_PROVIDERS) | set(POLLERS)
    assert {name for name, entry in entries.items() if not entry["enabled"]} == set(DISABLED)
    assert entries["stripe"] | {"enabled": None} == {
        "kind": "provider",
        "name": "stripe",
        "typeVersion": "1.0.0",
        "optionsVersion": 1,
        "lifecycle": "active",
        "since": None,
        "replacement": None,
        "enabled": None,
    }
    operator = await hub.api.call("GET", "/v1/catalog", hub.keys["operator"])
    assert operator.json() == reply.json()  # the hub's catalog, the same for every key


async def test_the_catalog_needs_a_key_with_the_catalog_scope(hub: ControlUnderTest) -> None:
    assert (await hub.api.call("GET", "/v1/catalog", None)).status == 401
    reply = await hub.api.call("GET", "/v1/catalog", hub.keys["a-ops"])
    assert reply.status == 403
    assert reply.json()["requiredScope"] == "connector.catalog.read"


async def test_the_catalog_shows_a_test_only_deprecated_type(
    hub: ControlUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_test_types(monkeypatch)
    reply = await hub.api.call("GET", "/v1/catalog", hub.keys["a"])
    legacy = next(entry for entry in reply.json()["types"] if entry["name"] == "legacy-hooks")
    assert (legacy["lifecycle"], legacy["since"], legacy["replacement"], legacy["enabled"]) == (
        "deprecated",
        "2026-01-31",
        "github",
        True,
    )


async def put(hub: ControlUnderTest, document: dict[str, Any]) -> tuple[int, Any]:
    path = f"/v1/connectors/a/{document['metadata']['name']}"
    reply = await hub.api.call("PUT", path, hub.keys["a"], document)
    return reply.status, reply.json()


async def test_an_apply_of_a_disabled_type_is_refused_and_audited(hub: ControlUnderTest) -> None:
    status, body = await put(hub, webhook("github"))
    assert status == 422
    assert body["code"] == "invalid_spec"
    assert body["problems"] == [
        {
            "document": 0,
            "field": "spec.provider",
            "message": "provider github is disabled on this hub (HUB_DISABLED_PROVIDERS)",
        }
    ]
    status, body = await put(hub, feed("rss"))
    assert status == 422
    assert body["problems"][0]["field"] == "spec.poll.kind"
    assert await hub.plane.specs.connectors("a") == []
    records = [orjson.loads(m.data) for m in await stream_messages(hub.nc.jetstream(), AUDIT_STREAM)]
    refused = [r for r in records if r["action"] == "connector_apply"]
    assert [(r["target"], r["outcome"]) for r in refused] == [("a/hooks", "invalid"), ("a/feed", "invalid")]
    status, _ = await put(hub, webhook("stripe"))
    assert status == 201


async def test_an_apply_of_a_retired_type_is_refused_naming_the_replacement(
    hub: ControlUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_test_types(monkeypatch)
    status, body = await put(hub, webhook("ancient-hooks"))
    assert status == 422
    assert body["problems"][0]["message"] == "provider ancient-hooks was retired on 2025-06-30: use github instead"
    status, body = await put(hub, feed("old-feed"))
    assert status == 422
    assert body["problems"][0]["message"] == "poller old-feed was retired on 2025-06-30: use rss instead"
    status, _ = await put(hub, webhook("legacy-hooks"))
    assert status == 201  # deprecated: still applied


async def test_an_apply_pinned_to_another_major_is_refused_and_a_minor_pin_is_accepted(
    hub: ControlUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_test_types(monkeypatch)  # legacy-hooks serves 1.2.0
    status, body = await put(hub, webhook("legacy-hooks", "2"))
    assert status == 422
    assert body["problems"] == [
        {
            "document": 0,
            "field": "spec.typeVersion",
            "message": "typeVersion 2 asks for major version 2: this hub serves provider legacy-hooks 1.2.0 "
            "(major 1 only)",
        }
    ]
    status, body = await put(hub, webhook("legacy-hooks", "1.1"))
    assert status == 201, body
    stored = await hub.plane.specs.connector("a", "hooks")
    assert stored is not None
    assert isinstance(stored.document, ConnectorDocument)
    assert stored.document.spec.typeVersion == "1.1"


class RetiredLegacyHooks(LegacyHooks):
    """`legacy-hooks` once it is retired: the same name, another lifecycle (test only)."""

    lifecycle = Lifecycle.retired(date(2026, 6, 30), "github")


async def test_a_spec_stored_before_its_type_was_retired_is_not_served(
    hub: ControlUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_test_types(monkeypatch)
    status, _ = await put(hub, webhook("legacy-hooks"))
    assert status == 201
    retired = {**registry.WEBHOOK_PROVIDERS, "legacy-hooks": RetiredLegacyHooks}
    monkeypatch.setattr(registry, "WEBHOOK_PROVIDERS", MappingProxyType(retired))
    js = hub.nc.jetstream()
    reported: list[tuple[str, str, StatusChange]] = []
    watcher = ConfigWatcher(
        Settings(),
        ["ingress"],
        await kv_bucket(js, SPECS_BUCKET),
        await kv_bucket(js, SECRETS_BUCKET),
        SecretCache(load_master_key(MASTER_KEY, None)),
        status=lambda tenant, name, change: reported.append((tenant, name, change)),
    )
    await watcher.start()
    try:

        async def refused() -> bool:
            return any(change.state == "error" for _, _, change in reported)

        await wait_for(refused, timeout=5.0, what="the error status of the retired type's connector")
        assert watcher.live.registry.current.get("a", "hooks") is None
        error = next(change.last_error for _, _, change in reported if change.state == "error")
        assert error == "spec.provider: provider legacy-hooks was retired on 2026-06-30: use github instead"
    finally:
        await watcher.stop()


def test_the_build_refuses_a_disabled_type_and_a_pin_it_does_not_serve() -> None:
    document = ConnectorDocument.model_validate(webhook("github"))
    limits = {"publish_timeout_s": 5.0, "claim_ttl_s": 30.0, "duplicate_window_s": 600.0}
    with pytest.raises(ConfigError) as refused:
        build_connector(document, disabled=("github",), **limits)
    assert [(p.field, p.message) for p in refused.value.problems] == [
        ("spec.provider", "provider github is disabled on this hub (HUB_DISABLED_PROVIDERS)")
    ]
    pinned = document.model_copy(update={"spec": document.spec.model_copy(update={"typeVersion": "3"})})
    with pytest.raises(ConfigError) as refused:
        build_connector(pinned, **limits)
    assert refused.value.problems[0].field == "spec.typeVersion"
    poll = ConnectorDocument.model_validate(feed("rss"))
    with pytest.raises(ConfigError) as refused:
        build_source(poll, publish_timeout_s=5.0, disabled=("rss",))
    assert [p.field for p in refused.value.problems] == ["spec.poll.kind"]
    assert build_source(poll, publish_timeout_s=5.0).provider == "feed"


async def test_a_spec_stored_before_its_provider_was_disabled_is_not_served(hub: ControlUnderTest) -> None:
    """Stored by a hub that serves github; an instance started with HUB_DISABLED_PROVIDERS=github does not."""
    await hub.plane.specs.create(ConnectorDocument.model_validate(webhook("github", name="old")))
    js = hub.nc.jetstream()
    reported: list[tuple[str, str, StatusChange]] = []
    watcher = ConfigWatcher(
        Settings(disabled_providers=("github",)),
        ["ingress"],
        await kv_bucket(js, SPECS_BUCKET),
        await kv_bucket(js, SECRETS_BUCKET),
        SecretCache(load_master_key(MASTER_KEY, None)),
        status=lambda tenant, name, change: reported.append((tenant, name, change)),
    )
    await watcher.start()
    try:

        async def refused() -> bool:
            return any(change.state == "error" for _, _, change in reported)

        await wait_for(refused, timeout=5.0, what="the error status of the disabled provider's connector")
        assert watcher.live.registry.current.get("a", "old") is None
        error = next(change.last_error for _, _, change in reported if change.state == "error")
        assert error is not None
        assert "github" in error
        assert "disabled" in error
    finally:
        await watcher.stop()


async def test_an_apply_of_a_deprecated_type_is_accepted_with_a_warning_naming_the_replacement(
    hub: ControlUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_test_types(monkeypatch)  # legacy-hooks: deprecated, replaced by github
    status, body = await put(hub, webhook("legacy-hooks"))
    assert status == 201, body
    (warning,) = body["warnings"]
    assert "a/hooks" in warning
    assert "github" in warning
    reply = await hub.api.call("POST", "/v1/connectors:validate", hub.keys["a"], [webhook("legacy-hooks")])
    assert reply.json()["warnings"] == [warning]
