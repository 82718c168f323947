"""Handlers run detached from FastStream's batch, at most `limit` at once: a slow message holds its
own slot only, and a stopping gate lets running handlers finish. Unit tests of `InFlight`, then the
same behaviour through the real gate on real servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hub.gate.consumers import DISPATCH_DURABLE
from hub.gate.inflight import InFlight
from tests.hub.gate.fixtures import GateFactory
from tests.hub.gate.harness import acme_specs, envelope, publish_event, serving, subscribe_target, until


class Held:
    """Handlers that wait until the test lets them go, recording what started and finished."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[int] = []
        self.release: dict[int, asyncio.Event] = {}

    async def handle(self, n: int) -> None:
        self.release.setdefault(n, asyncio.Event())
        self.started.append(n)
        await self.release[n].wait()
        self.finished.append(n)

    def let_go(self, n: int) -> None:
        self.release.setdefault(n, asyncio.Event()).set()


async def test_the_detached_handler_returns_while_the_handling_runs() -> None:
    held, inflight = Held(), InFlight(4)
    start = inflight.detach(held.handle)
    await asyncio.wait_for(start(1), 1)  # returns although handler 1 is held
    await until(lambda: held.started == [1], 1, "handler 1 running")
    assert len(inflight) == 1
    assert held.finished == []
    held.let_go(1)
    await until(lambda: len(inflight) == 0, 1, "handler 1 done")
    assert held.finished == [1]


async def test_at_most_limit_run_and_a_freed_slot_lets_the_next_start() -> None:
    held, inflight = Held(), InFlight(2)
    start = inflight.detach(held.handle)
    await start(1)
    await start(2)
    third = asyncio.ensure_future(start(3))
    await until(lambda: held.started == [1, 2], 1, "two handlers running")
    await asyncio.sleep(0)  # give the third a chance it must not take
    assert not third.done()
    assert held.started == [1, 2]
    held.let_go(2)
    await asyncio.wait_for(third, 1)
    await until(lambda: held.started == [1, 2, 3], 1, "the third handler running")
    for n in (1, 3):
        held.let_go(n)
    await until(lambda: len(inflight) == 0, 1, "all done")


async def test_a_failing_handler_is_logged_and_frees_its_slot(caplog: pytest.LogCaptureFixture) -> None:
    inflight = InFlight(1)

    async def broken(_: int) -> None:
        raise RuntimeError("a bug")

    start = inflight.detach(broken)
    with caplog.at_level(logging.ERROR, logger="hub.gate.inflight"):
        await start(1)
        await asyncio.wait_for(start(2), 1)  # the slot came back
        await until(lambda: len(inflight) == 0, 1, "both done")
    failures = [r for r in caplog.records if r.message == "gate handler failed"]
    assert len(failures) == 2
    assert failures[0].exc_info is not None


async def test_drain_waits_for_running_handlers() -> None:
    held, inflight = Held(), InFlight(4)
    await inflight.detach(held.handle)(1)
    asyncio.get_running_loop().call_soon(held.let_go, 1)
    await inflight.drain(5)
    assert held.finished == [1]
    assert len(inflight) == 0


async def test_drain_cancels_what_outlives_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    held, inflight = Held(), InFlight(4)
    await inflight.detach(held.handle)(1)
    await until(lambda: held.started == [1], 1, "handler running")
    with caplog.at_level(logging.WARNING, logger="hub.gate.inflight"):
        await inflight.drain(0.05)
    assert held.finished == []
    assert len(inflight) == 0
    assert any("cancelled at stop" in r.message for r in caplog.records)


# --- through the gate, on real servers ------------------------------------------------------------

ROUTES = """    - name: slow
      match: {{types: ["github.slow"]}}
      target: {{http: {{url: "{url}/slow", timeout: 20s}}}}
    - name: fast
      match: {{types: ["github.push"]}}
      target: {{subject: svc.acme.fast}}"""


@dataclass
class HeldTarget:
    """An HTTP target that holds every request until `release` is set."""

    url: str = ""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    holding: int = 0
    answered: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.holding += 1
        await self.release.wait()
        self.holding -= 1
        self.answered += 1
        return web.Response(status=200)


@contextlib.asynccontextmanager
async def held_target() -> AsyncIterator[HeldTarget]:
    async with serving(HeldTarget()) as target:
        try:
            yield target
        finally:
            target.release.set()


@pytest.mark.integration
async def test_a_held_dispatch_does_not_hold_the_messages_fetched_with_it(make_gate: GateFactory) -> None:
    async with held_target() as target:
        gate = await make_gate(acme_specs(ROUTES.format(url=target.url)))
        fast = await subscribe_target(gate.nc, "svc.acme.fast")
        await publish_event(gate.js, envelope("acme", "gh", "github.slow"))
        events = [envelope("acme", "gh", "github.push", data={"n": n}) for n in range(20)]
        for event in events:
            await publish_event(gate.js, event)
        await until(lambda: len(fast.messages) == len(events), 15, "every fast delivery")
        assert target.holding == 1
        assert target.answered == 0
        assert sorted(fast.ids()) == sorted(e.id for e in events)
        target.release.set()
        await until(lambda: target.answered == 1, 10, "the slow delivery")


@pytest.mark.integration
async def test_stopping_the_gate_lets_a_running_dispatch_finish_and_ack(make_gate: GateFactory) -> None:
    async with held_target() as target:
        gate = await make_gate(acme_specs(ROUTES.format(url=target.url)))
        await publish_event(gate.js, envelope("acme", "gh", "github.slow"))
        await until(lambda: target.holding == 1, 15, "the dispatch running")
        stopping = asyncio.ensure_future(gate.gate.stop())
        await asyncio.sleep(0.2)  # stop must be waiting on the dispatch, not done without it
        assert not stopping.done()
        target.release.set()
        await asyncio.wait_for(stopping, 15)
        assert target.answered == 1
        info = await gate.js.consumer_info("HUB_INVOCATIONS", DISPATCH_DURABLE)
        assert info.num_ack_pending == 0
        assert info.num_pending == 0
