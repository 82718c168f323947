"""Kept refused requests over a real hub: list, show, retry after the secret is fixed, tenant isolation."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web

from events.envelope import headers_to_attributes
from events.streams import AUDIT_STREAM, REJECTED_STREAM
from events.subjects import rejected_subject
from hub import cli
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from hub.gate.catalog import catalog_of
from hub.history.rejected import Query, RetryAudit, list_kept, retry, retry_path, show
from hub.ingress.rejected import RejectedRecord
from hub.jobs.kind import JobServices
from hub.jobs.runner import JobRunner
from hub.jobs.store import JobStore
from hub.runtime.live import Live
from hub.settings import Settings
from tests.conftest import HubFactory, HubUnderTest, wait_for
from tests.hub.control.fixtures import MASTER_KEY
from tests.hub.gate.harness import stream_messages
from tests.hub.ingress.signing import github_headers, stripe_headers
from tests.hub.jobs.fixtures import job_ended

pytestmark = pytest.mark.integration

OLD, NEW = "the secret before rotation", "the secret the sender signs with"
STRIPE_SECRET = "whsec_rejected_history_test"
SPECS = """
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{name: gh-key, secretRef: {source: store, name: gh-key}}]
---
apiVersion: hub/v1
kind: Connector
metadata: {name: st, tenant: acme}
spec:
  type: webhook
  provider: stripe
  secrets: [{name: k1, secretRef: {source: env, name: HISTORY_STRIPE_SECRET}}]
  webhook: {replayWindow: 300s}
"""
BODY = b'{"zen": "Design for failure.", "hook_id": 1}'


@dataclass
class Setup:
    hub: HubUnderTest
    plane: ControlPlane
    settings: Settings
    api: str
    session: aiohttp.ClientSession
    keys: dict[str, str]

    async def call(self, method: str, path: str, key: str) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[key]}"}
        async with self.session.request(method, self.api + path, headers=headers) as response:
            return response.status, orjson.loads(await response.read())


@pytest.fixture
async def setup(make_hub: HubFactory, nats_server: RunningServer) -> AsyncIterator[Setup]:
    """A hub serving acme/gh (a store secret, OLD) and acme/st, and its admin API with keys for
    tenants acme and other, and an operator."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    await plane.secrets.set("acme", "gh-key", OLD.encode())
    hub = await make_hub(SPECS, env={"HISTORY_STRIPE_SECRET": STRIPE_SECRET}, master_key=MASTER_KEY)
    settings = Settings(master_key=MASTER_KEY)  # as the hub's: its master key, default timeouts
    admin = AdminContext(plane, "http://hub.test", None, 300, nc=hub.nc, redis=hub.redis, settings=settings)
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    keys = {}
    for name, tenant in (("acme", "acme"), ("other", "other"), ("operator", None)):
        keys[name], _ = await plane.create_key(
            tenant, ["connector.operation.read", "connector.operation.invoke"], "t", Actor("t")
        )
    session = aiohttp.ClientSession()
    try:
        yield Setup(hub, plane, settings, f"http://{host}:{port}", session, keys)
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()


async def refused(setup: Setup, count: int = 1) -> list[Any]:
    """Send `count` GitHub deliveries signed with NEW (the hub holds OLD: 401) and wait until kept."""
    for _ in range(count):
        assert (await setup.hub.post("acme/gh", BODY, github_headers(BODY, NEW))).status == 401

    async def all_kept() -> bool:
        page = await list_kept(setup.hub.nc, Query("acme", "gh", limit=200))
        return len(page.items) >= count

    await wait_for(all_kept, what="the refusals to be kept")
    return (await list_kept(setup.hub.nc, Query("acme", "gh", limit=200))).items


async def audits(setup: Setup) -> list[dict[str, Any]]:
    """The retries' audit records, in order."""
    records = [orjson.loads(m.data or b"{}") for m in await stream_messages(setup.hub.js, AUDIT_STREAM)]
    return [r for r in records if r.get("action") == "rejected_retry"]


async def test_list_and_show_newest_first_paged_and_filtered(setup: Setup) -> None:
    kept = await refused(setup, 3)
    seqs = [k.seq for k in kept]
    assert seqs == sorted(seqs, reverse=True)

    status, page = await setup.call("GET", "/v1/rejected?connector=gh&limit=2", "acme")
    assert status == 200
    assert [r["seq"] for r in page["rejected"]] == seqs[:2]
    assert page["nextCursor"] == seqs[1]
    status, rest = await setup.call("GET", f"/v1/rejected?connector=gh&limit=2&cursor={seqs[1]}", "acme")
    assert [r["seq"] for r in rest["rejected"]] == seqs[2:]
    assert rest["nextCursor"] is None
    assert page["rejected"][0]["reason"] == "no_match"
    assert page["rejected"][0]["error"] == "bad_signature"

    status, none = await setup.call("GET", "/v1/rejected?tenant=acme&reason=replay_window", "operator")
    assert (status, none["rejected"]) == (200, [])
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    status, none = await setup.call("GET", f"/v1/rejected?since={future}", "acme")
    assert (status, none["rejected"]) == (200, [])
    status, error = await setup.call("GET", "/v1/rejected?since=yesterday", "acme")
    assert (status, error["code"]) == (400, "bad_request")

    status, one = await setup.call("GET", f"/v1/rejected/acme/gh/{seqs[0]}", "acme")
    assert status == 200
    assert base64.b64decode(one["bodyBase64"]) == BODY
    assert ["X-Hub-Signature-256", github_headers(BODY, NEW)["X-Hub-Signature-256"]] in one["headers"]
    assert one["retryable"] is True


async def test_retry_still_refused_then_recovered_once_then_duplicate(setup: Setup) -> None:
    (kept,) = await refused(setup)
    path = f"/v1/rejected/acme/gh/{kept.seq}:retry"

    status, answer = await setup.call("POST", path, "acme")
    assert status == 200
    assert (answer["outcome"], answer["error"], answer["reason"]) == ("still_refused", "bad_signature", "no_match")
    assert await setup.hub.event_count() == 0

    await setup.plane.set_secret("acme", "gh-key", NEW.encode(), Actor("t"))  # version 2: the sender's
    status, answer = await setup.call("POST", path, "acme")
    assert (status, answer["outcome"]) == (200, "recovered")
    (event,) = await setup.hub.events()
    attributes = headers_to_attributes(event.headers)
    assert attributes["hubrecoveredat"] == answer["recoveredAt"]
    assert attributes["id"] == answer["ids"][0]
    assert orjson.loads(event.data or b"{}")["hubrecoveredat"] == answer["recoveredAt"]

    status, again = await setup.call("POST", path, "acme")
    assert (status, again["outcome"], again["ids"]) == (200, "duplicate", answer["ids"])
    assert await setup.hub.event_count() == 1

    outcomes = [(a["outcome"], a["target"], "keyId" in a) for a in await audits(setup)]
    target = f"acme/gh#{kept.seq}"
    assert outcomes == [("still_refused", target, True), ("recovered", target, True), ("duplicate", target, True)]


async def test_the_replay_window_is_judged_at_receipt_not_at_retry(setup: Setup) -> None:
    connector = setup.hub.context.registry.current.get("acme", "st")
    assert connector is not None
    hour_ago = time.time() - 3600
    results = []
    for signed_at, event_id in ((hour_ago, "evt_in_window"), (hour_ago - 900, "evt_outside")):
        body = orjson.dumps({"id": event_id, "object": "event", "type": "invoice.paid", "created": int(signed_at)})
        record = RejectedRecord(
            tenant="acme",
            connector="st",
            provider="stripe",
            error="unavailable",
            reason="test",
            detail="",
            status=400,
            received_at=hour_ago,
            remote="127.0.0.1",
            method="POST",
            url="http://127.0.0.1/hooks/acme/st",
            headers=list(stripe_headers(body, STRIPE_SECRET, int(signed_at)).items()),
            withheld=[],
            body=body,
            body_bytes=len(body),
        )
        ack = await setup.hub.js.publish(rejected_subject("acme", "st"), record.to_json(), stream=REJECTED_STREAM)
        kept = await show(setup.hub.nc, "acme", "st", ack.seq)
        assert kept is not None
        async with retry_path(setup.hub.nc, setup.hub.redis, setup.settings) as path:
            results.append(await retry(path, connector, kept, RetryAudit(setup.plane.audit, "test")))
    assert results[0].outcome == "recovered"  # an hour late, but signed when it was received
    assert (results[1].outcome, results[1].reason) == ("still_refused", "timestamp_too_old")
    assert await setup.hub.event_count() == 1


async def test_another_tenant_cannot_list_show_or_retry(setup: Setup) -> None:
    (kept,) = await refused(setup)
    answers = {}
    for seq in (kept.seq, kept.seq + 1000):
        answers[seq] = [
            await setup.call("GET", "/v1/rejected?tenant=acme", "other"),
            await setup.call("GET", f"/v1/rejected/acme/gh/{seq}", "other"),
            await setup.call("POST", f"/v1/rejected/acme/gh/{seq}:retry", "other"),
        ]
    for status, body in answers[kept.seq]:
        assert (status, body["code"]) == (404, "not_found")
    strip = [[(s, {k: v for k, v in b.items() if k != "requestId"}) for s, b in a] for a in answers.values()]
    assert strip[0] == strip[1]  # an existing one answers as a missing one
    status, own = await setup.call("GET", "/v1/rejected", "other")
    assert (status, own["rejected"]) == (200, [])
    status, missing = await setup.call("GET", f"/v1/rejected/acme/gh/{kept.seq + 1000}", "acme")
    assert (status, missing["code"]) == (404, "not_found")
    status, bad = await setup.call("GET", "/v1/rejected/acme/gh/not-a-seq", "acme")
    assert (status, bad["code"]) == (404, "not_found")
    assert await audits(setup) == []
    assert await setup.hub.event_count() == 0


async def test_the_cli_lists_shows_and_retries(
    setup: Setup,
    nats_server: RunningServer,
    valkey_server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUB_NATS_URL", nats_server.url)
    monkeypatch.setenv("HUB_REDIS_URL", valkey_server.url)
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)
    (kept,) = await refused(setup)
    seq = str(kept.seq)

    assert await asyncio.to_thread(cli.main, ["rejected", "list", "acme/gh", "--reason", "no_match", "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [r["seq"] for r in listed["rejected"]] == [kept.seq]
    assert await asyncio.to_thread(cli.main, ["rejected", "list", "acme", "--since", "1h"]) == 0
    assert f"{seq} " in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, ["rejected", "show", "acme/gh", seq]) == 0
    assert orjson.loads(capsys.readouterr().out)["body"] == BODY.decode()

    assert await asyncio.to_thread(cli.main, ["rejected", "retry", "acme/gh", seq]) == 1
    assert "still refused: bad_signature/no_match" in capsys.readouterr().out
    await setup.plane.set_secret("acme", "gh-key", NEW.encode(), Actor("t"))
    assert await asyncio.to_thread(cli.main, ["rejected", "retry", "acme/gh", seq]) == 0
    assert capsys.readouterr().out.startswith("recovered: ")
    assert await asyncio.to_thread(cli.main, ["rejected", "retry", "acme/gh", seq]) == 0
    assert capsys.readouterr().out.startswith("duplicate: ")
    assert await setup.hub.event_count() == 1
    assert [a["outcome"] for a in await audits(setup)] == ["still_refused", "recovered", "duplicate"]

    assert await asyncio.to_thread(cli.main, ["rejected", "retry-all", "acme/gh", "--no-follow"]) == 0
    job_id = capsys.readouterr().out.strip().removeprefix("job ")
    stored = await (await JobStore.open(setup.hub.nc.jetstream())).get(job_id)
    assert stored is not None
    assert (stored.job.kind, stored.job.tenant, stored.job.params) == ("retry-rejected", "acme", {"connector": "gh"})

    with pytest.raises(SystemExit, match="no kept request"):
        await asyncio.to_thread(cli.main, ["rejected", "show", "acme/gh", str(kept.seq + 1000)])
    with pytest.raises(SystemExit, match="not a sequence number"):
        await asyncio.to_thread(cli.main, ["rejected", "retry", "acme/gh", "x1"])


async def test_a_tenant_listing_pages_past_one_batch(setup: Setup) -> None:
    """Three connectors' 100 records each: more than one direct-get batch (256), in pages of 200."""
    for n in range(300):
        record = RejectedRecord(
            tenant="acme",
            connector=f"c{n % 3}",
            provider="github",
            error="bad_signature",
            reason="no_match",
            detail="",
            status=401,
            received_at=time.time(),
            remote="127.0.0.1",
            method="POST",
            url=f"http://127.0.0.1/hooks/acme/c{n % 3}",
            headers=[],
            withheld=[],
            body=b"{}",
            body_bytes=2,
        )
        await setup.hub.js.publish(rejected_subject("acme", f"c{n % 3}"), record.to_json(), stream=REJECTED_STREAM)
    first = await list_kept(setup.hub.nc, Query("acme", limit=200))
    assert first.next_cursor is not None
    second = await list_kept(setup.hub.nc, Query("acme", cursor=first.next_cursor, limit=200))
    seqs = [k.seq for k in [*first.items, *second.items]]
    assert len(seqs) == 300
    assert seqs == sorted(set(seqs), reverse=True)
    assert second.next_cursor is None
    only_c1 = await list_kept(setup.hub.nc, Query("acme", "c1", limit=200))
    assert {k.record.connector for k in only_c1.items} == {"c1"}
    assert len(only_c1.items) == 100


async def test_a_bulk_retry_job_recovers_every_kept_request_once_and_a_second_finds_duplicates(
    setup: Setup,
) -> None:
    await refused(setup, 2)
    await setup.plane.set_secret("acme", "gh-key", NEW.encode(), Actor("t"))  # the sender's secret, fixed
    assert (await setup.call("POST", "/v1/rejected:retry?tenant=acme", "other"))[0] == 404  # not its tenant
    store = await JobStore.open(setup.hub.nc.jetstream())
    services = JobServices(setup.plane, setup.hub.redis, setup.settings)
    runner = JobRunner(setup.hub.nc, store, Live(catalog_of([], [])), rate=1000.0, poll_s=0.05, services=services)
    task = asyncio.create_task(runner.run())
    try:
        status, job = await setup.call("POST", "/v1/rejected:retry?connector=gh", "acme")
        assert (status, job["kind"], job["tenant"]) == (202, "retry-rejected", "acme")
        first = await job_ended(store, job["id"])
        # the two kept requests are one signed delivery sent twice: one event, then a duplicate
        assert (first.state, first.progress.done) == ("succeeded", 2)
        assert first.result == {"recovered": 1, "duplicate": 1}
        assert await setup.hub.event_count() == 1

        _, again = await setup.call("POST", "/v1/rejected:retry?connector=gh", "acme")
        second = await job_ended(store, again["id"])
        assert (second.state, second.result) == ("succeeded", {"duplicate": 2})
        assert await setup.hub.event_count() == 1  # nothing twice
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    outcomes = [a["outcome"] for a in await audits(setup)]
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "recovered"]
