"""Path segments no tenant, connector or secret can have: the 404 of an unknown name, never a 5xx."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
import yarl

from events.streams import AUDIT_STREAM
from hub.admin.routes import ENDPOINTS, SECRETS
from tests.hub.control.fixtures import ControlUnderTest, Reply, webhook_connector
from tests.hub.gate.harness import stream_messages

IMPOSSIBLE = ("*", ">", "%2A", "%3E", "..", "%2E%2E", "a.b", "a%20b", "%C3%A9", "x" * 200)
"""Wildcards, a parent step, a subject separator, percent-encoded forms, non-ASCII and over-long."""
LISTED = (
    ("GET", "/v1/connectors/acme/*"),
    ("GET", "/v1/connectors/acme/%3E"),
    ("GET", "/v1/connectors/acme/%2E%2E"),
    ("GET", "/v1/connectors/acme/*/status"),
    ("DELETE", "/v1/connectors/acme/%3E"),
    ("POST", "/v1/connectors/acme/*:poll"),
    ("GET", "/v1/connectors/*/x"),
    ("GET", "/v1/secrets/*"),
)
BODIES: dict[str, Any] = {
    "putConnector": webhook_connector("a", "gh", []),
    "putSecret": {"value": "v"},
}


async def raw_call(control: ControlUnderTest, method: str, path: str, key: str, body: Any = None) -> Reply:
    """A request with the path sent as written: no client-side normalising of `..` or `%2E`."""
    url = yarl.URL(control.api.url + path, encoded=True)
    data = None if body is None else orjson.dumps(body)
    headers = {"Authorization": f"Bearer {key}"}
    async with control.api.session.request(method, url, data=data, headers=headers) as response:
        return Reply(response.status, await response.read(), response.headers.copy())


def without_request_id(reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = reply.json()
    body.pop("requestId")
    return body


async def unknown(control: ControlUnderTest) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an unknown connector and an unknown secret answer."""
    connector = await control.api.call("GET", "/v1/connectors/a/no-such", control.keys["operator"])
    secret = await control.api.call("DELETE", "/v1/secrets/a/no-such", control.keys["operator"])
    assert connector.status == secret.status == 404
    return without_request_id(connector), without_request_id(secret)


def impossible_paths() -> list[tuple[str, str, str, bool]]:
    """(operation, method, path, a secret's name is the odd one) for every segment of every endpoint."""
    found = []
    for endpoint in ENDPOINTS:
        secrets = endpoint.path.startswith(SECRETS)
        usual = {"tenant": "a", "name": "token" if secrets else "gh"}
        segments = re.findall(r"\{(\w+)\}", endpoint.path)
        for odd in segments:
            for value in IMPOSSIBLE:
                path = endpoint.path
                for segment in segments:
                    path = path.replace(f"{{{segment}}}", value if segment == odd else usual[segment])
                found.append((endpoint.operation_id, endpoint.method, path, secrets and odd == "name"))
    return found


def test_every_endpoint_with_a_path_segment_is_covered() -> None:
    operations = {operation for operation, *_ in impossible_paths()}
    assert operations == {e.operation_id for e in ENDPOINTS if "{" in e.path}


@pytest.mark.parametrize("key", ["a", "operator"])
async def test_an_impossible_segment_of_any_endpoint_answers_as_an_unknown_name(
    control: ControlUnderTest, key: str
) -> None:
    no_connector, no_secret = await unknown(control)
    for operation, method, path, secret_name in impossible_paths():
        reply = await raw_call(control, method, path, control.keys[key], BODIES.get(operation))
        assert reply.status == 404, (operation, path, reply.body)
        assert without_request_id(reply) == (no_secret if secret_name else no_connector), (operation, path)


@pytest.mark.parametrize("key", ["a", "operator"])
async def test_the_reported_paths_answer_404(control: ControlUnderTest, key: str) -> None:
    no_connector, _ = await unknown(control)
    for method, path in LISTED:
        for tenant_path in (path, path.replace("acme", "a")):
            reply = await raw_call(control, method, tenant_path, control.keys[key])
            assert reply.status == 404, (tenant_path, reply.body)
            assert without_request_id(reply) == no_connector, tenant_path


@pytest.mark.parametrize("query", ["*", ">", "%3E", "a.b", "x" * 200])
async def test_an_impossible_tenant_to_list_answers_404(control: ControlUnderTest, query: str) -> None:
    no_connector, _ = await unknown(control)
    for path in ("/v1/connectors", "/v1/connectors/service-map"):
        for key in ("a", "operator"):
            reply = await raw_call(control, "GET", f"{path}?tenant={query}", control.keys[key])
            assert reply.status == 404, (path, key, reply.body)
            assert without_request_id(reply) == no_connector


async def test_a_put_of_another_tenants_document_is_refused_and_audited(control: ControlUnderTest) -> None:
    document = webhook_connector("b", "gh", [])
    reply = await control.api.call(
        "PUT", "/v1/connectors/a/gh", control.keys["a"], document, headers={"X-Request-Id": "cross-tenant-put"}
    )
    assert reply.status == 422
    assert reply.json()["code"] == "invalid_spec"
    records = [orjson.loads(m.data or b"") for m in await stream_messages(control.nc.jetstream(), AUDIT_STREAM)]
    denied = [r for r in records if r.get("requestId") == "cross-tenant-put"]
    assert [(r["action"], r["tenant"], r["outcome"]) for r in denied] == [("denied", "a", "invalid_spec")]
    assert await control.plane.specs.connector("b", "gh") is None
