"""The admin API on a real nats-server: keys, tenant isolation over every route, revisions, errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from events.streams import AUDIT_STREAM
from hub.admin import table
from hub.admin.routes import ENDPOINTS
from hub.poll.store import SourceKey
from tests.hub.control.fixtures import ControlUnderTest, Reply, webhook_connector
from tests.hub.gate.harness import stream_messages

STORE_SECRET = [{"secretRef": {"source": "store", "name": "gh-secret"}}]
"""A tenant key references its own store secrets only (see tests/hub/control/test_tenant_boundary.py)."""


@pytest.fixture(autouse=True)
async def tenant_secrets(control: ControlUnderTest) -> None:
    """Each tenant has the store secret its connectors reference."""
    for tenant in ("a", "b"):
        await control.plane.secrets.set(tenant, "gh-secret", b"signing secret of " + tenant.encode())


def connector(tenant: str, name: str, **spec: Any) -> dict[str, Any]:
    return webhook_connector(tenant, name, STORE_SECRET, **spec)


async def seed(control: ControlUnderTest) -> None:
    """Tenant b has a connector `gh` and a secret; tenant a has `gh-a`."""
    for key, document in (("b", connector("b", "gh")), ("a", connector("a", "gh-a"))):
        tenant = document["metadata"]["tenant"]
        reply = await control.api.call(
            "PUT", f"/v1/connectors/{tenant}/{document['metadata']['name']}", control.keys[key], document
        )
        assert reply.status == 201, reply.body
    reply = await control.api.call("PUT", "/v1/secrets/b/token", control.keys["b"], {"value": "b-value"})
    assert reply.status == 200, reply.body


def requests_for(tenant: str, name: str = "gh") -> dict[str, tuple[str, str, Any]]:
    """One request per operation, aimed at `tenant`'s resources."""
    return {
        "listConnectors": ("GET", f"/v1/connectors?tenant={tenant}", None),
        "validateConnectors": ("POST", "/v1/connectors:validate", connector(tenant, name)),
        "diffConnectors": ("POST", "/v1/connectors:diff", connector(tenant, name)),
        "serviceMap": ("GET", f"/v1/connectors/service-map?tenant={tenant}", None),
        "getConnector": ("GET", f"/v1/connectors/{tenant}/{name}", None),
        "putConnector": ("PUT", f"/v1/connectors/{tenant}/{name}", connector(tenant, name, enabled=False)),
        "deleteConnector": ("DELETE", f"/v1/connectors/{tenant}/{name}", None),
        "connectorStatus": ("GET", f"/v1/connectors/{tenant}/{name}/status", None),
        "pollConnector": ("POST", f"/v1/connectors/{tenant}/{name}:poll", None),
        "listSecrets": ("GET", f"/v1/secrets/{tenant}", None),
        "putSecret": ("PUT", f"/v1/secrets/{tenant}/token", {"value": "overwritten"}),
        "deleteSecret": ("DELETE", f"/v1/secrets/{tenant}/token", None),
        "openapi": ("GET", "/v1/openapi.json", None),
    }


def test_every_operation_is_covered_by_the_isolation_tests() -> None:
    """The connector, secret and API operations here; history, rejected requests and jobs have theirs
    (tests/hub/history, tests/hub/jobs)."""
    assert set(requests_for("b")) == {e.operation_id for e in ENDPOINTS}


async def test_every_route_needs_a_key(control: ControlUnderTest) -> None:
    for operation, (method, path, body) in requests_for("a").items():
        for key in (None, "chk_0123456789abcdef_" + "x" * 43, "not-a-key"):
            reply = await control.api.call(method, path, key, body)
            assert reply.status == 401, (operation, key)
            assert reply.json()["code"] in ("missing_key", "invalid_key")


async def test_a_tenant_key_cannot_read_change_or_detect_another_tenants_connectors(
    control: ControlUnderTest,
) -> None:
    await seed(control)
    before = await control.plane.specs.connectors("b")
    answers: dict[str, tuple[Reply, Reply]] = {}
    for operation, (method, path, body) in requests_for("b", "gh").items():
        existing = await control.api.call(method, path, control.keys["a"], body)
        _, missing_path, missing_body = requests_for("b", "no-such")[operation]
        missing = await control.api.call(method, missing_path, control.keys["a"], missing_body)
        answers[operation] = (existing, missing)
    for operation, (existing, missing) in answers.items():
        if operation == "openapi":
            assert existing.status == 200
            continue
        assert existing.status in (403, 404), operation
        assert existing.json()["code"] in ("not_found", "tenant_forbidden"), operation
        same = {k: v for k, v in existing.json().items() if k != "requestId"}
        assert same == {k: v for k, v in missing.json().items() if k != "requestId"}, operation
        assert b"gh" not in existing.body.replace(b"/gh", b""), operation
    assert await control.plane.specs.connectors("b") == before
    assert [s.name for s in await control.plane.secrets.list("b")] == ["gh-secret", "token"]
    assert (await control.plane.secrets.info("b", "token")).versions[-1].version == 1  # type: ignore[union-attr]


async def test_a_tenant_key_lists_only_its_own_tenant(control: ControlUnderTest) -> None:
    await seed(control)
    reply = await control.api.call("GET", "/v1/connectors", control.keys["a"])
    assert [c["metadata"]["name"] for c in reply.json()["connectors"]] == ["gh-a"]
    everything = await control.api.call("GET", "/v1/connectors", control.keys["operator"])
    assert sorted(c["metadata"]["name"] for c in everything.json()["connectors"]) == ["gh", "gh-a"]


async def test_a_key_with_too_few_scopes_gets_403_naming_the_scope(control: ControlUnderTest) -> None:
    await seed(control)
    needs = {e.operation_id: e.scope for e in ENDPOINTS}
    for operation, (method, path, body) in requests_for("a", "gh-a").items():
        reply = await control.api.call(method, path, control.keys["a-read"], body)
        if needs[operation] in (None, "connector.catalog.read"):
            assert reply.status != 403, operation
        else:
            assert reply.status == 403, operation
            assert reply.json() | {"requestId": ""} == {
                "code": "insufficient_scope",
                "message": f"this key lacks the scope {needs[operation]}",
                "requiredScope": needs[operation],
                "requestId": "",
            }
    assert (await control.plane.specs.connector("a", "gh-a")).document.spec.enabled  # type: ignore[union-attr]


async def test_denied_calls_are_audited_with_request_and_key_ids(control: ControlUnderTest) -> None:
    await control.api.call("GET", "/v1/connectors/b/gh", control.keys["a"], headers={"X-Request-Id": "req-42"})
    await control.api.call("GET", "/v1/connectors/a/x", None, headers={"X-Request-Id": "req-43"})
    records = [orjson.loads(m.data) for m in await stream_messages(control.nc.jetstream(), AUDIT_STREAM)]
    denied = {r["requestId"]: r for r in records if r["action"] == "denied"}
    assert denied["req-42"]["tenant"] == "b"
    assert denied["req-42"]["outcome"] == "not_found"
    assert denied["req-42"]["keyId"] == control.keys["a"].split("_")[1]
    assert denied["req-42"]["durationMs"] >= 0
    assert denied["req-43"]["outcome"] == "missing_key"
    assert "keyId" not in denied["req-43"]


async def test_concurrent_applies_from_the_same_revision_one_wins_one_conflicts(control: ControlUnderTest) -> None:
    created = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    revision = created.json()["revision"]
    first = connector("a", "gh", enabled=False)
    second = connector("a", "gh", webhook={"maxBodyBytes": 2048})
    for document in (first, second):
        document["metadata"]["revision"] = revision
    replies = await asyncio.gather(
        control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], first),
        control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], second),
    )
    assert sorted(r.status for r in replies) == [200, 409]
    (loser,) = [r for r in replies if r.status == 409]
    (winner,) = [r for r in replies if r.status == 200]
    assert loser.json()["code"] == "revision_conflict"
    assert loser.json()["currentRevision"] == winner.json()["revision"]
    stored = await control.plane.specs.connector("a", "gh")
    assert stored is not None
    assert stored.revision == winner.json()["revision"]


async def test_an_apply_based_on_a_stale_revision_is_refused(control: ControlUnderTest) -> None:
    created = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    etag = created.headers["ETag"]
    updated = await control.api.call(
        "PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh", enabled=False), {"If-Match": etag}
    )
    assert updated.status == 200
    assert updated.json()["changes"] == [{"path": "spec.enabled", "op": "change", "before": True, "after": False}]
    stale = await control.api.call(
        "PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"), {"If-Match": etag}
    )
    assert stale.status == 409
    gone = await control.api.call("DELETE", "/v1/connectors/a/gh", control.keys["a"], headers={"If-Match": etag})
    assert gone.status == 409
    fetched = await control.api.call("GET", "/v1/connectors/a/gh", control.keys["a"])
    assert fetched.json()["metadata"]["revision"] == updated.json()["revision"]
    assert fetched.json()["spec"]["enabled"] is False


async def test_putting_the_same_document_again_is_unchanged(control: ControlUnderTest) -> None:
    first = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    again = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    assert (first.status, first.json()["action"]) == (201, "created")
    assert (again.status, again.json()["action"], again.json()["revision"]) == (
        200,
        "unchanged",
        first.json()["revision"],
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "bad_request"),
        (orjson.dumps({"kind": "Connector"}), 422, "invalid_spec"),
        (orjson.dumps(connector("a", "other")), 422, "invalid_spec"),
        (orjson.dumps(connector("a", "gh", provider="no-such-provider")), 422, "invalid_spec"),
        (
            orjson.dumps(webhook_connector("a", "gh", [{"secretRef": {"source": "store", "name": "missing"}}])),
            422,
            "invalid_spec",
        ),
    ],
)
async def test_bad_documents_get_a_specific_error(
    control: ControlUnderTest, body: bytes, status: int, code: str
) -> None:
    reply = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], body)
    assert (reply.status, reply.json()["code"]) == (status, code)
    assert reply.json()["message"]
    assert await control.plane.specs.connector("a", "gh") is None


async def test_validate_and_diff_report_without_storing(control: ControlUnderTest) -> None:
    await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    bad = connector("a", "x", provider="no-such-provider")
    checked = await control.api.call(
        "POST", "/v1/connectors:validate", control.keys["a-read"], [connector("a", "ok"), bad]
    )
    assert checked.status == 200
    assert checked.json()["valid"] is False
    assert [(p["document"], p["field"]) for p in checked.json()["problems"]] == [(1, "spec.provider")]
    diffed = await control.api.call(
        "POST", "/v1/connectors:diff", control.keys["a-read"], {"documents": [connector("a", "gh", enabled=False)]}
    )
    (result,) = diffed.json()["results"]
    assert (result["action"], result["changes"]) == (
        "updated",
        [{"path": "spec.enabled", "op": "change", "before": True, "after": False}],
    )
    assert (await control.plane.specs.connector("a", "gh")).document.spec.enabled  # type: ignore[union-attr]


async def test_a_tenant_key_cannot_set_its_own_policy(control: ControlUnderTest) -> None:
    policy = {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "p", "tenant": "a"}, "spec": {}}
    reply = await control.api.call("POST", "/v1/connectors:diff", control.keys["a"], policy)
    assert (reply.status, reply.json()["code"]) == (403, "operator_only")


async def test_status_starts_as_provisioning_and_follows_disable(control: ControlUnderTest) -> None:
    await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    status = await control.api.call("GET", "/v1/connectors/a/gh/status", control.keys["a"])
    body = status.json()
    assert body.pop("certification")["state"] == "pending"  # hub/control/certification.py
    assert body | {"revision": 0} == {
        "connector": "a/gh",
        "state": "provisioning",
        "revision": 0,
        "lastSuccessAt": None,
        "lastError": None,
        "healthCheckedAt": None,
        "slo": None,
    }
    await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh", enabled=False))
    status = await control.api.call("GET", "/v1/connectors/a/gh/status", control.keys["a"])
    assert status.json()["state"] == "disabled"


async def test_changes_are_audited_with_actor_and_outcome(control: ControlUnderTest) -> None:
    headers = {"X-Request-Id": "change-1"}
    await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"), headers)
    await control.api.call(
        "PUT", "/v1/secrets/a/token", control.keys["a"], {"value": "v"}, {"X-Request-Id": "change-2"}
    )
    await control.api.call("DELETE", "/v1/connectors/a/gh", control.keys["a"], headers={"X-Request-Id": "change-3"})
    messages = await stream_messages(control.nc.jetstream(), AUDIT_STREAM)
    records = {
        orjson.loads(m.data)["requestId"]: (m.subject, orjson.loads(m.data)) for m in messages if b"change-" in m.data
    }
    key_id = control.keys["a"].split("_")[1]
    assert records["change-1"][0] == "hub.audit.a.connector_apply"
    assert (records["change-1"][1]["outcome"], records["change-1"][1]["keyId"]) == ("created", key_id)
    assert records["change-2"][0] == "hub.audit.a.secret_set"
    assert records["change-2"][1]["detail"] == {"version": 1}
    assert records["change-3"][0] == "hub.audit.a.connector_delete"


async def test_the_openapi_document_describes_every_route(control: ControlUnderTest) -> None:
    reply = await control.api.call("GET", "/v1/openapi.json", control.keys["a-read"])
    document = reply.json()
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert described == {(e.method, e.path) for e in table.ENDPOINTS}
    assert document["components"]["schemas"]["Connector"]["properties"]["kind"]
    for item in document["paths"].values():
        for operation in item.values():
            assert "401" in operation["responses"]


async def test_polling_now_makes_an_enabled_poll_connector_due(control: ControlUnderTest) -> None:
    feed = {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": "feed", "tenant": "a"},
        "spec": {
            "type": "poll",
            "provider": "feed",
            "poll": {"kind": "rss", "interval": "1h", "request": {"url": "https://feeds.example.com/a.xml"}},
        },
    }
    assert (await control.api.call("PUT", "/v1/connectors/a/feed", control.keys["a"], feed)).status == 201
    key = SourceKey("a", "feed")
    await control.poll_store.set_next_run_at(key, time.time() + 3600)
    before = time.time()
    reply = await control.api.call("POST", "/v1/connectors/a/feed:poll", control.keys["a"])
    assert reply.status == 202, reply.body
    due = await control.poll_store.next_run_at(key)
    assert due is not None
    assert before <= due <= time.time()
    await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector("a", "gh"))
    webhook = await control.api.call("POST", "/v1/connectors/a/gh:poll", control.keys["a"])
    assert (webhook.status, webhook.json()["code"]) == (409, "not_pollable")
    no_invoke = await control.api.call("POST", "/v1/connectors/a/feed:poll", control.keys["a-read"])
    assert no_invoke.json()["requiredScope"] == "connector.operation.invoke"


async def test_large_bodies_are_read_whole_and_too_large_ones_refused(control: ControlUnderTest) -> None:
    document = connector("a", "gh")
    document["metadata"]["labels"] = {f"label-{i}": "x" * 500 for i in range(1000)}  # ~0.5 MB
    stored = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], document)
    assert stored.status == 201, stored.body[:200]
    document["metadata"]["labels"] = {f"label-{i}": "x" * 500 for i in range(2200)}  # over 1 MiB
    refused = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], document)
    assert (refused.status, refused.json()["code"]) == (413, "too_large")
