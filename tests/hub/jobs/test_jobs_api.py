"""The admin API's replay, job and dead-letter operations on a real nats-server: tenant isolation (another
tenant's job or dead letter answers exactly as a missing one), scopes, and the audit of every action."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS

from events.deadletter import DeadLetter, FailureClass
from events.envelope import rfc3339
from events.streams import AUDIT_STREAM, ensure_streams
from events.subjects import dlq_subject
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.control.plane import Actor, ControlPlane
from hub.history.deadletters import get_dead_letter
from hub.jobs import replay
from hub.jobs.selection import Selection
from hub.jobs.store import JobStore
from hub.runtime.natsflush import flush
from hub.settings import Settings
from tests.hub.control.fixtures import AdminApi, Reply
from tests.hub.gate.harness import envelope, publish_event, stream_messages

pytestmark = pytest.mark.integration

READ, INVOKE = "connector.operation.read", "connector.operation.invoke"


@dataclass
class Api:
    nc: NATS
    api: AdminApi
    jobs: JobStore
    keys: dict[str, str]


@pytest.fixture
async def api(nats_server: RunningServer) -> AsyncIterator[Api]:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, Settings().stream_settings())
    plane = await ControlPlane.open(js, None)
    admin = AdminContext(plane, "http://hub.test", None, 300, nc=nc)
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    session = aiohttp.ClientSession()

    async def key(tenant: str | None, scopes: list[str]) -> str:
        token, _ = await plane.create_key(tenant, scopes, "test", Actor("test"))
        return token

    keys = {
        "a": await key("a", [READ, INVOKE]),
        "b": await key("b", [READ, INVOKE]),
        "a-read": await key("a", [READ]),
        "operator": await key(None, [READ, INVOKE]),
    }
    try:
        yield Api(nc, AdminApi(f"http://{host}:{port}", session), await JobStore.open(js), keys)
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()


async def dead_letter(nc: NATS, tenant: str) -> int:
    event = envelope(tenant, "gh", "github.push")
    letter = DeadLetter(
        invocation_id=f"{tenant}:gh:{event.id}:hook",
        tenant=tenant,
        connector="gh",
        route="hook",
        target="svc",
        failure_class=FailureClass.PERMANENT,
        error="400",
        attempts=1,
        first_attempt_at=None,
        failed_at=rfc3339(time.time()),
        envelope=event.to_json(),
    )
    ack = await nc.jetstream().publish(dlq_subject(tenant, "gh", "hook"), letter.to_json())
    return ack.seq


def without_request_id(reply: Reply) -> dict[str, Any]:
    return {k: v for k, v in reply.json().items() if k != "requestId"}


async def test_another_tenants_jobs_and_dead_letters_answer_as_missing_ones(api: Api) -> None:
    b_seq = await dead_letter(api.nc, "b")
    b_job = await replay.start(api.jobs, replay.ReplayRequest(Selection(tenant="b"), "subject"), created_by="t")
    missing_job, missing_seq = "0" * 32, b_seq + 1000
    pairs: list[tuple[str, str, Any, str, Any]] = [
        ("GET", f"/v1/jobs/{b_job.id}", None, f"/v1/jobs/{missing_job}", None),
        ("GET", f"/v1/jobs/{b_job.id}", None, "/v1/jobs/not-a-job", None),
        ("POST", f"/v1/jobs/{b_job.id}:cancel", None, f"/v1/jobs/{missing_job}:cancel", None),
        ("GET", f"/v1/deadletters/b/{b_seq}", None, f"/v1/deadletters/b/{missing_seq}", None),
        ("GET", f"/v1/deadletters/a/{b_seq}", None, f"/v1/deadletters/a/{missing_seq}", None),
        ("GET", f"/v1/deadletters/a/{b_seq}", None, "/v1/deadletters/a/-1", None),
        ("GET", "/v1/deadletters?tenant=b", None, "/v1/deadletters?tenant=zz", None),
        ("POST", "/v1/deadletters:redrive", {"seq": b_seq}, "/v1/deadletters:redrive", {"seq": missing_seq}),
        ("POST", "/v1/deadletters:discard", {"seq": b_seq}, "/v1/deadletters:discard", {"seq": missing_seq}),
        (
            "POST",
            "/v1/replays",
            {"selection": {"tenant": "b"}, "dryRun": True},
            "/v1/replays",
            {"selection": {"tenant": "zz"}, "dryRun": True},
        ),
    ]
    for method, path, body, missing_path, missing_body in pairs:
        existing = await api.api.call(method, path, api.keys["a"], body)
        missing = await api.api.call(method, missing_path, api.keys["a"], missing_body)
        assert existing.status == 404, (path, existing.body)
        assert existing.json()["code"] == "not_found"
        assert without_request_id(existing) == without_request_id(missing), path
    assert await get_dead_letter(api.nc, b_seq) is not None  # neither redriven nor discarded
    stored = await api.jobs.get(b_job.id)
    assert stored is not None
    assert not stored.job.cancel_requested
    own = await api.api.call("GET", f"/v1/jobs/{b_job.id}", api.keys["b"])
    assert own.status == 200
    assert own.json()["id"] == b_job.id


async def test_a_tenant_key_lists_and_replays_only_its_own_tenant(api: Api) -> None:
    a_seq, _ = await dead_letter(api.nc, "a"), await dead_letter(api.nc, "b")
    for tenant in ("a", "b", "b"):
        await publish_event(api.nc.jetstream(), envelope(tenant, "gh", "github.push"))
    await replay.start(api.jobs, replay.ReplayRequest(Selection(tenant="b"), "subject"), created_by="t")
    letters = await api.api.call("GET", "/v1/deadletters", api.keys["a"])
    assert [d["seq"] for d in letters.json()["deadLetters"]] == [a_seq]
    everything = await api.api.call("GET", "/v1/deadletters", api.keys["operator"])
    assert len(everything.json()["deadLetters"]) == 2
    dry = await api.api.call("POST", "/v1/replays", api.keys["a"], {"selection": {}, "mode": "subject", "dryRun": True})
    assert dry.json() == {"events": 1, "mode": "subject"}

    started = await api.api.call("POST", "/v1/replays", api.keys["a"], {"selection": {}, "mode": "subject"})
    assert started.status == 202
    assert started.json()["tenant"] == "a"
    assert started.json()["state"] == "pending"
    listed = await api.api.call("GET", "/v1/jobs", api.keys["a"])
    assert [j["id"] for j in listed.json()["jobs"]] == [started.json()["id"]]
    assert len((await api.api.call("GET", "/v1/jobs?kind=replay", api.keys["operator"])).json()["jobs"]) == 2
    bad = await api.api.call("GET", "/v1/jobs?state=nope", api.keys["a"])
    assert (bad.status, bad.json()["code"]) == (422, "invalid_spec")


async def test_actions_need_the_invoke_scope_and_are_audited(api: Api) -> None:
    seqs = [await dead_letter(api.nc, "a") for _ in range(3)]
    refused = await api.api.call("POST", "/v1/deadletters:redrive", api.keys["a-read"], {"seq": seqs[0]})
    assert (refused.status, refused.json()["code"]) == (403, "insufficient_scope")
    redriven = await api.api.call("POST", "/v1/deadletters:redrive", api.keys["a"], {"seq": seqs[0]})
    assert redriven.status == 200
    assert redriven.json()["messageId"].endswith(f":redrive-{seqs[0]}")
    again = await api.api.call("POST", "/v1/deadletters:redrive", api.keys["a"], {"seq": seqs[0]})
    assert again.status == 404  # redriven once: it is gone
    as_job = await api.api.call("POST", "/v1/deadletters:redrive", api.keys["a"], {"seqs": [seqs[1]]})
    assert as_job.status == 202
    assert as_job.json()["kind"] == "redrive"
    assert as_job.json()["tenant"] == "a"
    discarded = await api.api.call("POST", "/v1/deadletters:discard", api.keys["a"], {"filter": {}, "limit": 1})
    assert discarded.json() == {"discarded": [seqs[2]], "more": True}
    canceled = await api.api.call("POST", f"/v1/jobs/{as_job.json()['id']}:cancel", api.keys["a"])
    assert canceled.status == 202
    assert canceled.json()["state"] == "canceled"
    wrong = await api.api.call("POST", "/v1/deadletters:redrive", api.keys["a"], {"seq": 1, "seqs": [2]})
    assert (wrong.status, wrong.json()["code"]) == (422, "invalid_spec")

    records = [orjson.loads(m.data or b"") for m in await stream_messages(api.nc.jetstream(), AUDIT_STREAM)]
    actions = [(r["action"], r["outcome"]) for r in records if r["action"] != "key_create"]
    assert actions == [
        ("denied", "insufficient_scope"),
        ("deadletter_redrive", "redriven"),
        ("deadletter_redrive", "accepted"),
        ("deadletter_discard", "discarded"),
        ("job_cancel", "requested"),
    ]


async def test_the_api_opens_the_jobs_bucket_once_not_at_every_request(api: Api, nats_server: RunningServer) -> None:
    """Opening the bucket asks nats-server for its info: a process pays that round trip once."""
    job = await replay.start(api.jobs, replay.ReplayRequest(Selection(tenant="a"), "subject"), created_by="t")
    watcher = await nats.connect(nats_server.url)
    try:
        infos = await watcher.subscribe("$JS.API.STREAM.INFO.KV_hub-jobs")
        await flush(watcher, 5)  # the subscription is in place before the first request
        for key in ("a", "a", "a", "operator"):
            assert (await api.api.call("GET", f"/v1/jobs/{job.id}", api.keys[key])).status == 200
        await watcher.flush()
        assert infos.pending_msgs == 1
    finally:
        await watcher.close()
