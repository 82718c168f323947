"""The CLI verbs act on what is deployed: with a hub running, `send-test`, `verify`, `policy explain`,
`status` and `list` read its spec store, so a connector applied a minute ago (through the admin API,
with a store secret the files never saw) can be tested."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hub import cli
from hub.app.embedded import RunningServer
from hub.control.plane import Actor
from schemas.policy import PolicyDocument
from tests.conftest import wait_for
from tests.hub.control.fixtures import MASTER_KEY, AdminApi, ControlUnderTest, HubProcess, HubStarter, webhook_connector
from tests.hub.ingress.signing import github_signature

SIGNING = "deployed-only-signing-secret-7c1e"
POLICY = {
    "apiVersion": "hub/v1",
    "kind": "Policy",
    "metadata": {"name": "a", "tenant": "a"},
    "spec": {"allowedSubjects": ["svc.a"], "rules": [{"name": "pushes", "effect": "allow", "types": ["github.push"]}]},
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def deployed(
    control: ControlUnderTest,
    start_hub: HubStarter,
    session: aiohttp.ClientSession,
    nats_server: RunningServer,
    valkey_server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
) -> HubProcess:
    """A running hub serving `a/gh` (store secret, a route, a Policy) and `a/broken` (an env secret the
    hub lacks), applied through the admin API only; the CLI's environment points at the hub."""
    hub = await start_hub("deployed")
    api, operator = AdminApi(hub.admin_url, session), control.keys["operator"]
    assert (await api.call("PUT", "/v1/secrets/a/gh-signing", operator, {"value": SIGNING})).status == 200
    document = webhook_connector("a", "gh", [{"secretRef": {"source": "store", "name": "gh-signing"}}])
    document["spec"]["routes"] = [
        {"name": "deploys", "match": {"types": ["github.push"]}, "target": {"subject": "svc.a.d"}}
    ]
    assert (await api.call("PUT", "/v1/connectors/a/gh", operator, document)).status == 201
    assert (
        await api.call(
            "PUT",
            "/v1/connectors/a/broken",
            operator,
            webhook_connector("a", "broken", [{"secretRef": {"source": "env", "name": "NOT_SET_ANYWHERE_4b2"}}]),
        )
    ).status == 201
    await control.plane.apply(PolicyDocument.model_validate(POLICY), Actor("operator-test"))

    async def served() -> bool:
        gh, broken = await control.plane.statuses.get("a", "gh"), await control.plane.statuses.get("a", "broken")
        return gh is not None and gh.state == "active" and broken is not None and broken.state == "error"

    await wait_for(served, timeout=10.0)
    for name in [n for n in os.environ if n.startswith("HUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_NATS_URL", nats_server.url)
    monkeypatch.setenv("HUB_REDIS_URL", valkey_server.url)
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)
    return hub


async def hub_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_send_test_and_verify_use_the_deployed_connector_and_its_store_secret(
    deployed: HubProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = await hub_cli(capsys, "send-test", "a/gh", "--url", deployed.http_url)
    assert code == 0, out + err
    assert "/hooks/a/gh -> 202" in out

    body = b'{"ref": "refs/heads/main", "after": "9f8e"}'
    (tmp_path / "body").write_bytes(body)
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": github_signature(body, SIGNING),
    }
    (tmp_path / "headers").write_text(json.dumps(headers))
    argv = ("verify", "a/gh", "--headers", str(tmp_path / "headers"), "--body", str(tmp_path / "body"))
    code, out, err = await hub_cli(capsys, *argv)
    assert code == 0, out + err
    assert "signature: OK, matched secret gh-signing" in out
    assert SIGNING not in out + err


async def test_policy_explain_status_and_list_read_the_running_hub(
    deployed: HubProcess, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"id": "e-1", "type": "github.push", "source": "hub://a/gh", "data": {}}))
    code, out, err = await hub_cli(capsys, "policy", "explain", "--connector", "a/gh", "--event", str(event))
    assert code == 0, out + err
    assert "route deploys" in out
    assert "ALLOWED by pushes" in out

    code, out, err = await hub_cli(capsys, "status", "--json")
    assert code == 0, err
    rows = {row["connector"]: row for row in json.loads(out)}
    assert (rows["a/gh"]["type"], rows["a/gh"]["state"]) == ("webhook", "active")
    assert rows["a/broken"]["state"] == "error"
    assert "NOT_SET_ANYWHERE_4b2" in rows["a/broken"]["lastError"]

    code, out, err = await hub_cli(capsys, "list")
    assert code == 0, err
    (broken,) = [line for line in out.splitlines() if line.startswith("a/broken")]
    assert "error" in broken
    assert "NOT_SET_ANYWHERE_4b2" in broken
