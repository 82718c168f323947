"""Replay jobs end to end on real servers: through the gate (the target receives replay-marked
invocation ids) and to the shadow subject, each after a dry run; a runner that dies mid-job is
resumed by another without sending any event twice; cancellation."""

from __future__ import annotations

from collections import Counter

import nats
import orjson
import pytest

from events.streams import REPLAY_STREAM, ensure_streams
from hub.app.embedded import RunningServer
from hub.history.events import journey_of
from hub.jobs import replay
from hub.jobs.selection import Selection, read_batch
from hub.jobs.store import JobStore
from hub.settings import Settings
from tests.hub.gate.fixtures import GateFactory
from tests.hub.gate.harness import (
    acme_specs,
    envelope,
    gate_idle,
    publish_event,
    stream_messages,
    timed_http_target,
    until,
)
from tests.hub.jobs.fixtures import catalog_of_specs, job_ended, runner

pytestmark = pytest.mark.integration

DENY_BLOCKED = "    - {name: no-blocked, effect: deny, routes: [blocked]}"


def routes(url: str) -> str:
    return f"""    - name: hook
      match: {{types: ["github.push"]}}
      target: {{http: {{url: "{url}/hook", timeout: 2s}}}}
      retry: {{maxAttempts: 2, initial: 100ms, max: 200ms, jitter: false}}
    - name: blocked
      match: {{types: ["github.push"]}}
      target: {{subject: svc.acme.blocked}}"""


async def test_replay_through_the_gate_after_a_dry_run(make_gate: GateFactory) -> None:
    async with timed_http_target() as target:
        gate = await make_gate(acme_specs(routes(target.url), extra_policy_rules=DENY_BLOCKED))
        events = [envelope("acme", "gh", "github.push", data={"n": n}) for n in range(3)]
        events.append(envelope("acme", "gh", "github.issues"))  # matches no route
        for event in events:
            await publish_event(gate.js, event)
        await until(lambda: len(target.requests) == 3, 10, "the originals delivered")
        await until(lambda: gate_idle(gate.js), 10, "the gate idle")
        catalog = catalog_of_specs(gate.specs)
        request = replay.ReplayRequest(Selection(tenant="acme", connector="gh"), "gate")

        summary = await replay.dry_run(gate.nc, catalog.current, request)
        assert summary == {
            "events": 4,
            "mode": "gate",
            "decisions": [
                {"route": "blocked", "effect": "deny", "rule": "no-blocked", "count": 3},
                {"route": "hook", "effect": "allow", "rule": "all", "count": 3},
            ],
            "unrouted": 1,
        }
        assert len(target.requests) == 3  # a dry run sends nothing

        store = await JobStore.open(gate.js)
        job = await replay.start(store, request, created_by="test")
        async with runner(gate.nats_url, catalog):
            ended = await job_ended(store, job.id)
        assert (ended.state, ended.progress.done, ended.progress.total) == ("succeeded", 4, 4)
        assert ended.result == {"mode": "gate", "events": 4, "invocations": 3}
        await until(lambda: len(target.requests) == 6, 10, "the replayed invocations delivered")
        originals = {f"acme:gh:{e.id}:hook" for e in events[:3]}
        assert set(target.keys()[:3]) == originals
        assert sorted(target.keys()[3:]) == sorted(f"{key}:replay-{job.id}" for key in originals)


async def test_replay_to_the_shadow_subject_after_a_dry_run(make_gate: GateFactory) -> None:
    gate = await make_gate(acme_specs("    []"), policy=False, dispatch=False)
    pushes = [envelope("acme", "gh", "github.push") for _ in range(3)]
    others = [envelope("acme", "gh", "github.issues"), envelope("beta", "gh", "github.push")]
    for event in pushes + others:
        await publish_event(gate.js, event)
    request = replay.ReplayRequest(Selection(tenant="acme", type="github.p*"), "subject")
    assert await replay.dry_run(gate.nc, catalog_of_specs(gate.specs).current, request) == {
        "events": 3,
        "mode": "subject",
    }

    store = await JobStore.open(gate.js)
    job = await replay.start(store, request, created_by="test")
    async with runner(gate.nats_url, catalog_of_specs(gate.specs)):
        ended = await job_ended(store, job.id)
    assert (ended.state, ended.progress.done) == ("succeeded", 3)
    shadow = await stream_messages(gate.js, REPLAY_STREAM)
    assert [m.subject for m in shadow] == ["hub.replay.acme.gh.github.push"] * 3
    assert [orjson.loads(m.data or b"")["id"] for m in shadow] == [e.id for e in pushes]
    assert [m.headers["Nats-Msg-Id"] for m in shadow if m.headers] == [
        f"acme:gh:{e.id}:replay-{job.id}" for e in pushes
    ]
    assert shadow[0].headers is not None
    assert shadow[0].headers["ce-type"] == "github.push"

    async def replayed_in_journey() -> bool:
        kinds = [[r.kind for r in await journey_of(gate.nc, "acme", "gh", e.id)] for e in pushes]
        return all(k == ["replayed"] for k in kinds)

    await until(replayed_in_journey, 10, "each replayed event's journey to say so")
    (record,) = await journey_of(gate.nc, "acme", "gh", pushes[0].id)
    assert (record.fields["job"], record.fields["mode"]) == (job.id, "subject")


async def test_a_job_whose_runner_dies_is_resumed_without_sending_anything_twice(
    make_gate: GateFactory, nats_server: RunningServer
) -> None:
    gate = await make_gate(acme_specs("    []"), policy=False, dispatch=False)
    events = [envelope("acme", "gh", "github.push", data={"n": n}) for n in range(300)]
    for event in events:
        await publish_event(gate.js, event)
    store = await JobStore.open(gate.js)
    job = await replay.start(
        store, replay.ReplayRequest(Selection(tenant="acme", connector="gh"), "subject"), created_by="test"
    )
    catalog = catalog_of_specs(gate.specs)

    async def progressed() -> bool:
        stored = await store.get(job.id)
        return stored is not None and stored.job.progress.done >= 60

    async with runner(nats_server.url, catalog, rate=300, lease_s=1.0, batch_size=20) as first:
        await until(progressed, 15, "the first runner halfway")
        await first.kill()
    crashed = await store.get(job.id)
    assert crashed is not None
    assert crashed.job.state == "running"
    assert crashed.job.owner == first.runner.owner
    assert 60 <= crashed.job.progress.done < 300

    async with runner(nats_server.url, catalog, rate=300, lease_s=1.0, batch_size=20) as second:
        ended = await job_ended(store, job.id)
    assert (ended.state, ended.owner) == ("succeeded", second.runner.owner)
    assert ended.progress.done == 300  # resumed after the checkpoint, not from the start
    shadow = await stream_messages(gate.js, REPLAY_STREAM)
    ids = Counter(orjson.loads(m.data or b"")["id"] for m in shadow)
    assert len(shadow) == 300
    assert set(ids) == {e.id for e in events}
    assert set(ids.values()) == {1}


async def test_cancellation_stops_a_running_job_between_batches_and_a_pending_one_at_once(
    make_gate: GateFactory,
) -> None:
    gate = await make_gate(acme_specs("    []"), policy=False, dispatch=False)
    for n in range(200):
        await publish_event(gate.js, envelope("acme", "gh", "github.push", data={"n": n}))
    store = await JobStore.open(gate.js)
    request = replay.ReplayRequest(Selection(tenant="acme"), "subject")
    pending = await replay.start(store, request, created_by="test")
    canceled = await store.request_cancel(pending.id)
    assert canceled is not None
    assert canceled.state == "canceled"

    job = await replay.start(store, request, created_by="test")

    async def started() -> bool:
        stored = await store.get(job.id)
        return stored is not None and stored.job.progress.done >= 20

    async with runner(gate.nats_url, catalog_of_specs(gate.specs), rate=50, batch_size=10):
        await until(started, 15, "the job under way")
        assert (await store.request_cancel(job.id)) is not None
        ended = await job_ended(store, job.id)
    assert ended.state == "canceled"
    assert ended.cancel_requested
    assert 20 <= ended.progress.done < 200
    assert len(await stream_messages(gate.js, REPLAY_STREAM)) == ended.progress.done
    assert (await store.get(pending.id)).job.progress.done == 0  # type: ignore[union-attr]


async def test_the_stream_read_is_filtered_by_the_server(nats_server: RunningServer) -> None:
    """`read_batch` asks the server for one connector's subjects: other tenants' events never come back."""
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_streams(js, Settings().stream_settings())
        for n in range(10):
            await publish_event(js, envelope("other", "gh", "github.push", data={"n": n}))
        mine = envelope("acme", "gh", "github.push")
        await publish_event(js, mine)
        batch = await read_batch(nc, Selection(tenant="acme"), None, 100, 5)
        assert [orjson.loads(m.data)["id"] for m in batch.events] == [mine.id]
        assert batch.events[0].sequence == 11
        assert batch.next_seq is None
    finally:
        await nc.close()
