"""The tenant boundary, played by a hostile tenant: a tenant's key cannot make the hub read its own
environment or files, open the egress guard, or reach another tenant whose name its own is a prefix
of (or the other way round). Operator-supplied specs keep `env` and `file` references, but never
`HUB_*` settings or `/proc`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from adapters.base import SigningSecret
from hub import cli
from hub.app.embedded import RunningServer
from hub.control.plane import Actor
from hub.ingest.secrets import SecretResolutionError, resolve_secret
from schemas.connector import ConnectorDocument
from schemas.loader import read_specs
from schemas.policy import PolicyDocument
from schemas.secrets import SecretEntry
from tests.conftest import wait_for
from tests.hub.admin.test_admin_api import requests_for
from tests.hub.control.fixtures import MASTER_KEY, AdminApi, ControlUnderTest, HubStarter, Reply, webhook_connector

OPERATOR = Actor("operator-test")
TENANT_SCOPES = ["connector.catalog.read", "connector.instance.manage", "connector.operation.read"]
"""A tenant key without the credential scope, as in the review's reproduction."""
PROBE = "probe-value-the-hub-must-not-hand-a-tenant-4f1c"


@dataclass
class Listener:
    """A loopback HTTP server a tenant controls: records every request's headers."""

    url: str
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(path, headers) of each request."""


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    app = web.Application()
    recorder = Listener("")

    async def record(request: web.Request) -> web.Response:
        recorder.seen.append((request.path, dict(request.headers)))
        return web.json_response({"items": []})

    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    recorder.url = f"http://{host}:{port}/latest/meta-data"
    try:
        yield recorder
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def poll_connector(
    tenant: str, name: str, url: str, *, secret_ref: dict[str, Any] | None = None, egress: dict[str, Any] | None = None
) -> dict[str, Any]:
    poll: dict[str, Any] = {
        "kind": "http_json",
        "interval": "1s",
        "request": {"url": url},
        "items": {"path": "items", "id": "id"},
    }
    if secret_ref is not None:
        poll["auth"] = {"type": "header", "header": "X-Leak", "secretRef": secret_ref}
    if egress is not None:
        poll["egress"] = egress
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": name, "tenant": tenant},
        "spec": {"type": "poll", "provider": "leak", "poll": poll},
    }


def policy(tenant: str, egress: dict[str, Any] | None = None) -> PolicyDocument:
    spec: dict[str, Any] = {"default": "allow"} if egress is None else {"default": "allow", "egress": egress}
    return PolicyDocument.model_validate(
        {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": tenant, "tenant": tenant}, "spec": spec}
    )


def fields_of(reply: Reply) -> list[str]:
    return [p["field"] for p in reply.json().get("problems", [])]


HOST_REFERENCES = [
    pytest.param({"source": "env", "name": "GH_TOKEN"}, id="env"),
    pytest.param({"source": "file", "name": "/etc/hostname"}, id="file"),
]


@pytest.mark.parametrize("ref", HOST_REFERENCES)
async def test_a_tenant_key_cannot_make_the_hub_read_its_environment_or_files(
    control: ControlUnderTest, ref: dict[str, Any], listener: Listener
) -> None:
    key = await control.key("a", TENANT_SCOPES)
    webhook = webhook_connector("a", "gh", [{"secretRef": ref}])
    poll = poll_connector("a", "leak", listener.url, secret_ref=ref)
    for name, document, field_name in (
        ("gh", webhook, "spec.secrets[0].secretRef.source"),
        ("leak", poll, "spec.poll.auth.secretRef.source"),
    ):
        put = await control.api.call("PUT", f"/v1/connectors/a/{name}", key, document)
        assert put.status == 422, put.body
        assert field_name in fields_of(put)
        assert "operator" in put.json()["problems"][0]["message"]
        checked = await control.api.call("POST", "/v1/connectors:validate", key, document)
        assert checked.json()["valid"] is False
        assert field_name in fields_of(checked)
        diffed = await control.api.call("POST", "/v1/connectors:diff", key, document)
        assert diffed.status == 422
        assert await control.plane.specs.connector("a", name) is None
    operator = await control.api.call("PUT", "/v1/connectors/a/leak", control.keys["operator"], poll)
    assert operator.status == 201, operator.body  # the same reference stays an operator's to make


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ({"source": "env", "name": "HUB_MASTER_KEY"}, "HUB_*"),
        ({"source": "env", "name": "hub_signing_key"}, "HUB_*"),
        ({"source": "file", "name": "/proc/self/environ"}, "/proc"),
        ({"source": "file", "name": "/etc/../proc/1/environ"}, "/proc"),
        ({"source": "file", "name": "../../../../proc/self/environ"}, "/proc"),
        ({"source": "file", "name": "/sys/class/net/lo/address"}, "/sys"),
    ],
)
async def test_no_key_not_even_an_operators_references_hub_settings_or_proc(
    control: ControlUnderTest, listener: Listener, ref: dict[str, Any], why: str
) -> None:
    for key in ("a", "operator"):
        document = poll_connector("a", "leak", listener.url, secret_ref=ref)
        put = await control.api.call("PUT", "/v1/connectors/a/leak", control.keys[key], document)
        assert put.status == 422, put.body
        assert "spec.poll.auth.secretRef" in fields_of(put)
        assert why in put.body.decode()
    assert await control.plane.specs.connector("a", "leak") is None


def test_a_spec_file_referencing_a_hub_setting_is_refused_naming_file_document_and_field(tmp_path: Path) -> None:
    spec = tmp_path / "connectors.yaml"
    spec.write_text(
        "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: ok, tenant: acme}\n"
        "spec: {type: webhook, provider: github, secrets: [{secretRef: {source: env, name: GH_SECRET}}]}\n"
        "---\n"
        "apiVersion: hub/v1\nkind: Connector\nmetadata: {name: tok, tenant: acme}\n"
        "spec: {type: webhook, provider: url-token, secrets: [{secretRef: {source: env, name: HUB_SIGNING_KEY}}]}\n"
    )
    loaded, errors = read_specs(spec)
    assert [c.connector.metadata.name for c in loaded.connectors] == ["ok"]
    assert [(e.file, e.document, e.field) for e in errors] == [
        (spec, 2, "spec.secrets[0].secretRef")
    ]  # documents count from 1
    assert "HUB_*" in str(errors[0])


def test_a_file_reference_cannot_reach_proc_through_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "innocent-secret"
    link.symlink_to("/proc/self/environ")
    entry = SecretEntry.model_validate({"secretRef": {"source": "file", "name": str(link)}})
    with pytest.raises(SecretResolutionError, match="/proc"):
        resolve_secret(entry)
    plain = tmp_path / "secret"
    plain.write_text("value\n")
    ok = resolve_secret(SecretEntry.model_validate({"secretRef": {"source": "file", "name": str(plain)}}))
    assert ok == SigningSecret(str(plain), b"value")


async def test_a_tenant_key_cannot_open_the_egress_guard_that_its_policy_does_not(
    control: ControlUnderTest, listener: Listener
) -> None:
    key = control.keys["a"]
    asks = {
        "spec.poll.egress.allowPrivateNetworks": {"allowPrivateNetworks": True},
        "spec.poll.egress.allowedNetworks[0]": {"allowedNetworks": ["127.0.0.0/8"]},
    }
    for field_name, egress in asks.items():
        document = poll_connector("a", "meta", listener.url, egress=egress)
        put = await control.api.call("PUT", "/v1/connectors/a/meta", key, document)
        assert put.status == 422, put.body
        assert fields_of(put) == [field_name]
        assert "Policy" in put.json()["problems"][0]["message"]
    assert await control.plane.specs.connector("a", "meta") is None

    await control.plane.apply(policy("a", {"allowedNetworks": ["127.0.0.1/32"]}), OPERATOR)
    wider = poll_connector("a", "meta", listener.url, egress={"allowedNetworks": ["127.0.0.0/8"]})
    assert (await control.api.call("PUT", "/v1/connectors/a/meta", key, wider)).status == 422
    exact = poll_connector("a", "meta", listener.url, egress={"allowedNetworks": ["127.0.0.1/32"]})
    assert (await control.api.call("PUT", "/v1/connectors/a/meta", key, exact)).status == 201
    private = poll_connector("a", "meta", listener.url, egress={"allowPrivateNetworks": True})
    assert (await control.api.call("PUT", "/v1/connectors/a/meta", key, private)).status == 422

    await control.plane.apply(policy("a", {"allowPrivateNetworks": True}), OPERATOR)
    assert (await control.api.call("PUT", "/v1/connectors/a/meta", key, private)).status == 200
    other = poll_connector("b", "meta", listener.url, egress={"allowPrivateNetworks": True})
    refused = await control.api.call("PUT", "/v1/connectors/b/meta", control.keys["b"], other)
    assert refused.status == 422  # a grant is the tenant's own: tenant b's Policy grants nothing


async def test_a_hub_serves_a_tenant_written_spec_only_inside_the_boundary(
    control: ControlUnderTest, start_hub: HubStarter, listener: Listener, session: aiohttp.ClientSession
) -> None:
    """The review's reproduction, end to end: the PUT is refused, and a tenant-written spec that is
    in the store anyway (written before this check existed) is not served; the same spec written by
    the operator is served, so the listener would have seen the value."""
    hub = await start_hub("boundary", {"LEAK_PROBE": PROBE})
    api = AdminApi(hub.admin_url, session)
    key = await control.key("a", TENANT_SCOPES)
    egress = {"allowPrivateNetworks": True}
    for ref in ({"source": "env", "name": "HUB_MASTER_KEY"}, {"source": "env", "name": "LEAK_PROBE"}):
        document = poll_connector("a", "leak", listener.url, secret_ref=ref, egress=egress)
        reply = await api.call("PUT", "/v1/connectors/a/leak", key, document)
        assert reply.status == 422, reply.body
    assert (await api.call("GET", "/v1/connectors/a/leak", key)).status == 404

    legacy = poll_connector(
        "a", "legacy", listener.url + "/legacy", secret_ref={"source": "env", "name": "LEAK_PROBE"}, egress=egress
    )
    # in the store as the admin API wrote tenant documents before the boundary check
    await control.plane.specs.apply(ConnectorDocument.model_validate(legacy), tenant_authored=True)

    async def legacy_refused() -> bool:
        status = await control.plane.statuses.get("a", "legacy")
        return status is not None and status.state == "error"

    await wait_for(legacy_refused, timeout=10.0)
    status = await control.plane.statuses.get("a", "legacy")
    assert status is not None
    assert "spec.poll.auth.secretRef.source" in (status.lastError or "")
    assert "spec.poll.egress.allowPrivateNetworks" in (status.lastError or "")

    operator = poll_connector(
        "a", "operator", listener.url + "/operator", secret_ref={"source": "env", "name": "LEAK_PROBE"}, egress=egress
    )
    assert (await api.call("PUT", "/v1/connectors/a/operator", control.keys["operator"], operator)).status == 201

    async def polled() -> bool:
        return any(path.endswith("/operator") and headers.get("X-Leak") == PROBE for path, headers in listener.seen)

    await wait_for(polled, timeout=10.0)
    assert [path for path, _ in listener.seen if not path.endswith("/operator")] == []  # nothing else polled
    hub.stop()


async def test_revoking_a_policy_grant_takes_the_tenants_connector_out_of_service(
    control: ControlUnderTest, start_hub: HubStarter, listener: Listener, session: aiohttp.ClientSession
) -> None:
    hub = await start_hub("revoke")
    api = AdminApi(hub.admin_url, session)
    await control.plane.apply(policy("a", {"allowedNetworks": ["127.0.0.0/8"]}), OPERATOR)
    document = poll_connector("a", "internal", listener.url, egress={"allowedNetworks": ["127.0.0.0/8"]})
    assert (await api.call("PUT", "/v1/connectors/a/internal", control.keys["a"], document)).status == 201

    async def polled() -> bool:
        return bool(listener.seen)

    await wait_for(polled, timeout=10.0)
    await control.plane.apply(policy("a"), OPERATOR)

    async def refused() -> bool:
        status = await control.plane.statuses.get("a", "internal")
        return status is not None and status.state == "error"

    await wait_for(refused, timeout=10.0)
    status = await control.plane.statuses.get("a", "internal")
    assert status is not None
    assert "spec.poll.egress.allowedNetworks[0]" in (status.lastError or "")


PREFIX_PAIRS = [("acme", "acme-evil"), ("acme-evil", "acme"), ("a", "ab")]


@pytest.mark.parametrize(("mine", "theirs"), PREFIX_PAIRS)
async def test_a_tenant_whose_name_is_a_prefix_of_another_reaches_nothing_of_it(
    control: ControlUnderTest, mine: str, theirs: str
) -> None:
    own_key, their_key = await control.key(mine), await control.key(theirs)
    await control.plane.secrets.set(theirs, "gh-secret", b"their signing secret")
    await control.plane.secrets.set(theirs, "token", b"their token")
    put = await control.api.call(
        "PUT",
        f"/v1/connectors/{theirs}/gh",
        their_key,
        webhook_connector(theirs, "gh", [{"secretRef": {"source": "store", "name": "gh-secret"}}]),
    )
    assert put.status == 201, put.body
    before = await control.plane.specs.connectors(theirs)
    for operation, (method, path, body) in requests_for(theirs, "gh").items():
        if operation == "openapi":
            continue
        reply = await control.api.call(method, path, own_key, body)
        assert reply.status in (403, 404), (operation, reply.status)
        assert reply.json()["code"] in ("not_found", "tenant_forbidden"), operation
    listed = await control.api.call("GET", "/v1/connectors", own_key)
    assert listed.json()["connectors"] == []
    assert await control.plane.specs.connectors(theirs) == before
    assert [s.name for s in await control.plane.secrets.list(theirs)] == ["gh-secret", "token"]
    assert await control.plane.specs.connectors(mine) == []
    assert await control.plane.secrets.list(mine) == []


async def test_a_url_token_connector_signs_with_a_store_secret_and_the_cli_issues_its_url_from_the_hub(
    control: ControlUnderTest,
    start_hub: HubStarter,
    session: aiohttp.ClientSession,
    nats_server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The url-token scheme needs no reference to the hub's settings: one store secret per tenant,
    set through the API, and `connector-hub url-token` reads the deployed connector."""
    hub = await start_hub("url-token")
    api = AdminApi(hub.admin_url, session)
    key = control.keys["a"]
    assert (await api.call("PUT", "/v1/secrets/a/url-signing", key, {"value": "tenant a url key"})).status == 200
    document = webhook_connector("a", "reports", [{"secretRef": {"source": "store", "name": "url-signing"}}])
    document["spec"] |= {"provider": "url-token", "webhook": {"options": {"idPath": "id", "typePath": "kind"}}}
    assert (await api.call("PUT", "/v1/connectors/a/reports", key, document)).status == 201, "tenant may"
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_NATS_URL", nats_server.url)
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)
    issued = await asyncio.to_thread(cli.main, ["url-token", "a/reports", "--base-url", hub.http_url])
    assert issued == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith(f"{hub.http_url}/hooks/a/reports?token=")

    async def admitted() -> bool:
        async with session.post(url, data=b'{"id": "r-1", "kind": "report.ready"}') as response:
            return response.status == 202

    await wait_for(admitted, timeout=10.0)
    forged = url.rsplit("token=", 1)[0] + "token=" + url.rsplit("token=", 1)[1][:-2] + "xx"
    async with session.post(forged, data=b'{"id": "r-2", "kind": "report.ready"}') as response:
        assert response.status == 401
    hub.stop()
