"""Poll sources replaced while the scheduler runs (`PollScheduler.replace_sources`), end to end
(in-process scheduler, real nats-server and valkey-server, loopback sources): added, changed and
removed sources, a run in progress left to finish its page, and a source the client refuses.

Nothing here sleeps: each test waits, with a bound, for a condition, and "no more requests" is
checked against runs of another source, which prove the scheduler kept going meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hub.poll.scheduler import PollScheduler
from hub.poll.sources import PollSource as Source
from hub.poll.sources import build_source
from hub.poll.store import SourceKey
from schemas.connector import ConnectorDocument
from tests.hub.gate.harness import sample, until
from tests.hub.poll.fixtures import PollerFactory, PollerUnderTest
from tests.hub.poll.sources import LOOPBACK, PollSource, held, json_page, poll_connector, poll_source

pytestmark = pytest.mark.integration

API = SourceKey("acme", "api")
PUBLISH_TIMEOUT_S = 5.0
WAIT_S = 10.0


def source(name: str, url: str, **poll: Any) -> Source:
    """A runtime poll source (tenant acme) polling `url` every second."""
    settings = {
        "kind": "http_json",
        "interval": "1s",
        "request": {"url": url},
        "items": {"path": "items", "id": "id"},
        "egress": LOOPBACK,
    } | poll
    document = ConnectorDocument.model_validate(poll_connector(name, settings))
    return build_source(document, publish_timeout_s=PUBLISH_TIMEOUT_S)


def items(*ids: str, **more: Any) -> dict[str, Any]:
    """A JSON page body with these item ids."""
    return {"items": [{"id": i} for i in ids], **more}


def runs(poller: PollerUnderTest, outcome: str, connector: str) -> float:
    labels = {"tenant": "acme", "connector": connector, "outcome": outcome}
    return sample(poller.metrics.registry, "hub_poll_runs_total", labels)


async def ids_of(poller: PollerUnderTest, connector: str) -> list[str]:
    return [e["id"] for e in await poller.events() if e["hubconnector"] == connector]


def loop_tasks(label: str) -> list[asyncio.Task[Any]]:
    """The unfinished loop tasks of one source (the scheduler names them `poll <tenant>/<name>`)."""
    return [t for t in asyncio.all_tasks() if t.get_name() == f"poll {label}" and not t.done()]


def in_flight(server: PollSource, path: str) -> bool:
    """One request of `path` has arrived and is not answered yet."""
    return [r.answered_at for r in server.seen(path)] == [0.0]


async def scheduler_without_sources(make_poller: PollerFactory) -> tuple[PollerUnderTest, PollScheduler]:
    """A running scheduler that was started with no sources at all."""
    poller = await make_poller("")
    return poller, poller.polling.scheduler


# --- 1. a source added to a running scheduler ---------------------------------------------------------


async def test_a_source_added_to_a_scheduler_without_sources_is_polled(make_poller: PollerFactory) -> None:
    async with poll_source() as server:
        server.route("/a", json_page(items("a1", "a2")))
        poller, scheduler = await scheduler_without_sources(make_poller)
        assert await poller.events() == []  # a round trip: the scheduler's task has run by now
        assert not poller.polling.task.done()  # no sources is no reason to return
        assert scheduler.active_keys == frozenset()

        scheduler.replace_sources([source("api", server.url("/a"))])

        await until(lambda: runs(poller, "ok", "api") >= 1, WAIT_S, "the added source's first run")
        assert await ids_of(poller, "api") == ["a1", "a2"]
        assert scheduler.active_keys == {API}
        assert [r.status for r in server.seen("/a")][:1] == [200]


# --- 2. a changed source: the old loop ends (its page done) before the new one starts ----------------


async def test_a_changed_source_is_polled_with_its_new_settings_once_the_old_run_has_ended(
    make_poller: PollerFactory,
) -> None:
    release = asyncio.Event()
    async with poll_source() as server:
        server.queue("/v1", held(json_page(items("v1-1")), release))
        server.route("/v1", json_page(items("v1-1")))
        server.route("/v2", json_page(items("v2-1")))
        poller, scheduler = await scheduler_without_sources(make_poller)
        scheduler.replace_sources([source("api", server.url("/v1"))])
        await until(lambda: in_flight(server, "/v1"), WAIT_S, "the first run's page in flight")
        [old_loop] = loop_tasks("acme/api")
        try:
            scheduler.replace_sources([source("api", server.url("/v2"))])

            # The old loop is still in its page; the new one must wait for it (one lease owner per process).
            assert loop_tasks("acme/api") == [old_loop]
            assert scheduler.active_keys == {API}
        finally:
            release.set()

        await until(lambda: len(server.seen("/v2")) >= 2, WAIT_S, "two runs with the new settings")
        assert old_loop.done()
        assert len(loop_tasks("acme/api")) == 1
        [old] = server.seen("/v1")  # the held page, and nothing with the old settings since
        assert old.status == 200
        assert server.seen("/v2")[0].at >= old.answered_at
        assert server.max_concurrent == 1
        assert runs(poller, "interrupted", "api") == 1  # the old run stopped after its page
        assert await ids_of(poller, "api") == ["v1-1", "v2-1"]


# --- 3. removed sources: no more requests, kept sources untouched --------------------------------------


async def test_removed_sources_are_not_polled_any_more(make_poller: PollerFactory) -> None:
    async with poll_source() as server:
        for path in ("/a", "/b", "/c"):
            server.route(path, json_page(items(f"{path[1:]}1")))
        a, b, c = (source(name, server.url(f"/{name}")) for name in ("a", "b", "c"))
        poller, scheduler = await scheduler_without_sources(make_poller)
        scheduler.replace_sources([a, b])

        def ran(connector: str, times: float) -> bool:
            return runs(poller, "ok", connector) >= times

        await until(lambda: ran("a", 1) and ran("b", 1), WAIT_S, "both sources polled")
        [b_loop] = loop_tasks("acme/b")

        scheduler.replace_sources([b])  # the same object: b's loop is left alone
        await until(lambda: a.key not in scheduler.active_keys, WAIT_S, "a's loop to end")
        a_requests = len(server.seen("/a"))
        b_runs = runs(poller, "ok", "b")
        await until(lambda: ran("b", b_runs + 2), WAIT_S, "two more runs of b")
        assert len(server.seen("/a")) == a_requests
        assert loop_tasks("acme/b") == [b_loop]

        scheduler.replace_sources([])
        await until(lambda: not scheduler.active_keys, WAIT_S, "every loop to end")
        assert loop_tasks("acme/a") == loop_tasks("acme/b") == []
        b_requests = len(server.seen("/b"))
        assert not poller.polling.task.done()

        scheduler.replace_sources([c])  # its runs are the scheduler's ticks a and b must sit out
        await until(lambda: ran("c", 2), WAIT_S, "two runs of c")
        assert (len(server.seen("/a")), len(server.seen("/b"))) == (a_requests, b_requests)
        assert scheduler.active_keys == {c.key}


# --- 4. a run in progress finishes its page --------------------------------------------------------------


async def test_a_removed_source_finishes_the_page_in_progress_and_no_more(make_poller: PollerFactory) -> None:
    release = asyncio.Event()
    async with poll_source() as server:
        server.queue("/items", held(json_page(items("p1-1", "p1-2", next="/items?page=2")), release))
        server.route("/items", json_page(items("p2-1")))
        poller, scheduler = await scheduler_without_sources(make_poller)
        scheduler.replace_sources([source("api", server.url("/items"), pagination={"nextLink": "next"})])
        await until(lambda: in_flight(server, "/items"), WAIT_S, "the first page in flight")
        try:
            scheduler.replace_sources([])
            assert scheduler.active_keys == {API}  # retired, not cancelled: still in its page
            assert len(loop_tasks("acme/api")) == 1
        finally:
            release.set()

        await until(lambda: not scheduler.active_keys, WAIT_S, "the retired loop to end")
        assert loop_tasks("acme/api") == []
        [page] = server.seen("/items")  # the page in progress completed; page 2 was never fetched
        assert page.status == 200
        assert await ids_of(poller, "api") == ["p1-1", "p1-2"]
        assert runs(poller, "interrupted", "api") == 1
        assert await poller.redis.get(API.key("lease")) is None  # released on the way out
        assert not poller.polling.task.done()


# --- 5. a source the client refuses fails alone --------------------------------------------------------


async def test_a_source_whose_client_cannot_be_built_does_not_stop_the_others(make_poller: PollerFactory) -> None:
    async with poll_source() as server:
        server.route("/b", json_page(items("b1")))
        poller, scheduler = await scheduler_without_sources(make_poller)
        no_host = source("broken", "http:///items")  # EgressPolicy refuses a request URL without a host
        scheduler.replace_sources([no_host, source("b", server.url("/b"))])
        await until(lambda: len(loop_tasks("acme/broken")) == 1, WAIT_S, "the broken source's loop")
        [broken_loop] = loop_tasks("acme/broken")

        await until(lambda: runs(poller, "ok", "b") >= 2, WAIT_S, "two runs of the healthy source")
        assert loop_tasks("acme/broken") == [broken_loop]  # one loop, retrying after a pause, not restarted
        assert scheduler.active_keys == {no_host.key, SourceKey("acme", "b")}
        assert not poller.polling.task.done()
