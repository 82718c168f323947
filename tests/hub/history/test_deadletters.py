"""Dead letters on real servers: list (newest first, paged, filtered), show, discard, and redrive to
the route as configured now, exactly once at a target that dedupes on `Idempotency-Key`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from events.deadletter import DeadLetter, FailureClass
from events.envelope import rfc3339
from events.subjects import dlq_subject
from hub.control.rates import RateStore
from hub.history.deadletters import (
    DeadLetterFilter,
    discard,
    get_dead_letter,
    list_dead_letters,
    redrive,
)
from hub.history.events import journey_of
from hub.jobs import redrive as redrive_jobs
from hub.jobs.store import JobStore
from tests.hub.gate.fixtures import GateFactory, GateUnderTest
from tests.hub.gate.harness import (
    acme_specs,
    dead_letter_messages,
    envelope,
    gate_idle,
    publish_event,
    serving,
    until,
)
from tests.hub.jobs.fixtures import catalog_of_specs, job_ended, runner

pytestmark = pytest.mark.integration


@dataclass
class DedupingTarget:
    """A target that applies each `Idempotency-Key` once: a repeated key is recognised (200, not applied
    again). It answers `script` first (applying before a 5xx, as a target that fails after its commit)."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers["Idempotency-Key"]
        self.keys.append(key)
        if key not in self.applied:
            self.applied.append(key)
        return web.Response(status=self.script.pop(0) if self.script else 200)


def route(url: str) -> str:
    return f"""    - name: hook
      match: {{types: ["github.push"]}}
      target: {{http: {{url: "{url}/hook", timeout: 2s}}}}
      retry: {{maxAttempts: 2, initial: 50ms, max: 100ms, jitter: false}}"""


async def idle(gate: GateUnderTest) -> None:
    await until(lambda: gate_idle(gate.js), 15, "the gate idle")


async def test_a_redrive_keeps_the_idempotency_key_starts_attempts_afresh_and_applies_once(
    make_gate: GateFactory,
) -> None:
    async with serving(DedupingTarget(script=[503, 503])) as target:
        gate = await make_gate(acme_specs(route(target.url)))
        event = envelope("acme", "gh", "github.push")
        await publish_event(gate.js, event)
        await until(lambda: dead_letter_messages(gate.js), 10, "the dead letter")
        await idle(gate)
        invocation = f"acme:gh:{event.id}:hook"
        assert target.keys == [invocation] * 2
        assert target.applied == [invocation]
        page = await list_dead_letters(gate.nc, DeadLetterFilter(tenant="acme"), before=None, limit=10)
        (letter,) = page.letters
        assert (letter.invocation_id, letter.record["attempts"], letter.failure_class) == (invocation, 2, "transient")

        async def counted_as_failed() -> bool:  # the connector's error rate SLO counts it (hub/control/slo.py)
            counts = await RateStore(gate.redis).counts([("acme", "gh")], minutes=5)
            return counts[("acme", "gh")].failed == 1

        await until(counted_as_failed, 10, "the dead letter counted in the connector's per-minute counts")

        target.script = [503]  # one more failure: a redrive counting on from 2 attempts would give up at once
        msg_id = await redrive(gate.nc, letter)
        assert msg_id == f"{invocation}:redrive-{letter.seq}"
        await until(lambda: len(target.keys) == 4, 10, "the redrive retried and delivered")
        await idle(gate)
        assert target.keys == [invocation] * 4  # the original Idempotency-Key every time
        assert target.applied == [invocation]  # the target recognised the redrive: applied once
        assert await dead_letter_messages(gate.js) == []  # delivered, and the dead letter deleted
        assert await get_dead_letter(gate.nc, letter.seq) is None

        await redrive(gate.nc, letter)  # the same dead letter again (two callers raced): one message
        await idle(gate)
        assert len(target.keys) == 4

        async def redriven_in_journey() -> bool:
            return "redriven" in [r.kind for r in await journey_of(gate.nc, "acme", "gh", event.id)]

        await until(redriven_in_journey, 10, "the journey to show the redrive")
        kinds = [r.kind for r in await journey_of(gate.nc, "acme", "gh", event.id)]
        assert kinds.index("dead_lettered") < kinds.index("redriven") < len(kinds) - 1  # attempts after it


async def test_a_dead_letter_that_fails_again_is_dead_lettered_again(make_gate: GateFactory) -> None:
    async with serving(DedupingTarget(script=[503] * 4)) as target:
        gate = await make_gate(acme_specs(route(target.url)))
        await publish_event(gate.js, envelope("acme", "gh", "github.push"))
        await until(lambda: dead_letter_messages(gate.js), 10, "the dead letter")
        await idle(gate)
        (letter,) = (await list_dead_letters(gate.nc, DeadLetterFilter(), before=None, limit=5)).letters
        await redrive(gate.nc, letter)
        await until(lambda: len(target.keys) == 4, 10, "the redrive's two attempts")
        await idle(gate)
        (again,) = (await list_dead_letters(gate.nc, DeadLetterFilter(), before=None, limit=5)).letters
        assert again.seq > letter.seq
        assert again.invocation_id == letter.invocation_id


async def publish_letter(gate: GateUnderTest, tenant: str, route_name: str, failure: FailureClass, n: int) -> None:
    event = envelope(tenant, "gh", "github.push", data={"n": n})
    letter = DeadLetter(
        invocation_id=f"{tenant}:gh:{event.id}:{route_name}",
        tenant=tenant,
        connector="gh",
        route=route_name,
        target="svc",
        failure_class=failure,
        error="boom",
        attempts=1,
        first_attempt_at=None,
        failed_at=rfc3339(time.time()),
        envelope=event.to_json(),
    )
    await gate.js.publish(dlq_subject(tenant, "gh", route_name), letter.to_json())


async def test_listing_is_newest_first_paged_and_filtered_and_discard_deletes(make_gate: GateFactory) -> None:
    gate = await make_gate(acme_specs("    []"), policy=False, dispatch=False)
    for n in range(30):
        failure = FailureClass.PERMANENT if n % 3 == 0 else FailureClass.TRANSIENT
        await publish_letter(gate, "acme" if n % 2 == 0 else "beta", "hook", failure, n)
    acme = DeadLetterFilter(tenant="acme")
    first = await list_dead_letters(gate.nc, acme, before=None, limit=4)
    assert [d.seq for d in first.letters] == [29, 27, 25, 23]
    assert first.next_cursor == 23
    second = await list_dead_letters(gate.nc, acme, before=first.next_cursor, limit=20)
    assert [d.seq for d in second.letters] == [21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1]
    assert second.next_cursor is None
    permanent = DeadLetterFilter.parse({"tenant": "acme", "class": "permanent"})
    found = await list_dead_letters(gate.nc, permanent, before=None, limit=50)
    assert [d.seq for d in found.letters] == [25, 19, 13, 7, 1]  # n = 24, 18, 12, 6, 0
    assert all(d.tenant == "acme" and d.failure_class == "permanent" for d in found.letters)

    shown = await get_dead_letter(gate.nc, 25)
    assert shown is not None
    assert shown.to_dict()["envelope"]["data"] == {"n": 24}
    assert await discard(gate.nc, 25) is True
    assert await discard(gate.nc, 25) is False
    assert await get_dead_letter(gate.nc, 25) is None
    with pytest.raises(ValueError, match="class must be one of"):
        DeadLetterFilter.parse({"class": "nope"})


async def test_a_redrive_job_redrives_what_the_filter_matches(make_gate: GateFactory) -> None:
    gate = await make_gate(acme_specs("    []"), policy=False, dispatch=False)
    for n in range(6):
        await publish_letter(gate, "acme", "hook" if n < 4 else "other", FailureClass.TRANSIENT, n)
    store = await JobStore.open(gate.js)
    job = await redrive_jobs.start_by_filter(store, DeadLetterFilter(tenant="acme", route="hook"), created_by="t")
    async with runner(gate.nats_url, catalog_of_specs(gate.specs), batch_size=3):
        ended = await job_ended(store, job.id)
    assert (ended.state, ended.progress.done, ended.result) == ("succeeded", 4, {"redriven": 4})
    left = await list_dead_letters(gate.nc, DeadLetterFilter(), before=None, limit=10)
    assert [d.route for d in left.letters] == ["other", "other"]
    invocations = await gate.js.stream_info("HUB_INVOCATIONS")
    assert invocations.state.messages == 4
