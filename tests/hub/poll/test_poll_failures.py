"""Failing poll sources end to end: `Retry-After`, backoff, the circuit (`degraded`) and recovery, the
poll metrics through a failure and a recovery, and one source's bad data next to a good source."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.hub.gate.harness import sample, until
from tests.hub.poll.fixtures import PollerFactory, PollerUnderTest
from tests.hub.poll.sources import (
    LOOPBACK,
    PollSource,
    held,
    json_page,
    poll_connector,
    poll_source,
    specs_yaml,
    status,
)

pytestmark = pytest.mark.integration


def metric(poller: PollerUnderTest, name: str, connector: str = "api", **more: str) -> float:
    return sample(poller.metrics.registry, name, {"tenant": "acme", "connector": connector, **more})


def runs(poller: PollerUnderTest, outcome: str, connector: str = "api") -> float:
    return metric(poller, "hub_poll_runs_total", connector, outcome=outcome)


def items_poll(source: PollSource, **overrides: Any) -> dict[str, Any]:
    return {
        "kind": "http_json",
        "interval": "1h",
        "request": {"url": source.url("/items")},
        "items": {"path": "items", "id": "id", "time": "at", "cursor": "cursor"},
        "backoff": {"initial": "50ms", "max": "100ms"},
        "egress": LOOPBACK,
    } | overrides


OK_PAGE = {"items": [{"id": "a"}, {"id": "b"}], "cursor": "c1"}


async def test_retry_after_is_honoured(make_poller: PollerFactory) -> None:
    async with poll_source() as source:
        source.queue("/items", status(429, headers={"Retry-After": "2"}))
        source.route("/items", json_page(OK_PAGE))
        poller = await make_poller(specs_yaml(poll_connector("api", items_poll(source))))

        async def told_to_wait() -> bool:
            return (await poller.status("acme", "api")).get("lastError") == "http 429"

        await until(told_to_wait, 5, "the 429 recorded")
        after_429 = await poller.status("acme", "api")
        assert (after_429["state"], after_429["failures"]) == ("active", "1")  # transient, below the threshold
        assert metric(poller, "hub_poll_backoff_seconds") >= 2.0  # not the 50ms backoff

        await until(lambda: runs(poller, "ok") == 1, 5, "the run after Retry-After")
        first, second = source.requests[:2]
        assert (first.status, second.status) == (429, 200)
        assert second.wall - first.wall >= 2.0
        assert metric(poller, "hub_poll_backoff_seconds") == 0


async def test_five_failures_degrade_the_source_and_a_success_restores_it(make_poller: PollerFactory) -> None:
    fifth = asyncio.Event()
    async with poll_source() as source:
        source.queue("/items", *[status(500)] * 4)
        source.route("/items", held(status(500), fifth))  # the fifth failure waits for the test
        poll = items_poll(source, circuit={"failureThreshold": 5, "cooldown": "1s"})
        poller = await make_poller(specs_yaml(poll_connector("api", poll)))

        await until(lambda: len(source.requests) == 5, 10, "the fifth request")
        four = await poller.status("acme", "api")
        assert (four["state"], four["failures"], four["lastError"]) == ("active", "4", "http 500")
        assert metric(poller, "hub_poll_consecutive_failures") == 4

        fifth.set()

        async def degraded() -> bool:
            return (await poller.status("acme", "api")).get("state") == "degraded"

        await until(degraded, 5, "degraded after the fifth failure")
        five = await poller.status("acme", "api")
        assert (five["failures"], five["lastError"]) == ("5", "http 500")
        assert metric(poller, "hub_poll_consecutive_failures") == 5
        assert runs(poller, "failed") == 5
        assert metric(poller, "hub_poll_backoff_seconds") >= 1.0  # the cooldown, not the 100ms backoff

        source.route("/items", json_page(OK_PAGE))  # the source recovers

        async def active() -> bool:
            return (await poller.status("acme", "api")).get("state") == "active"

        await until(active, 5, "active after a success")
        status_now = await poller.status("acme", "api")
        assert "lastError" not in status_now
        assert status_now["failures"] == "0"
        assert status_now["itemsPublished"] == "2"
        assert metric(poller, "hub_poll_consecutive_failures") == 0
        assert metric(poller, "hub_poll_backoff_seconds") == 0

        statuses = [r.status for r in source.requests]
        assert statuses[:6] == [500] * 5 + [200]
        gaps = [b.at - a.at for a, b in zip(source.requests, source.requests[1:6], strict=False)]
        assert all(gap < 0.9 for gap in gaps[:4]), gaps  # backed off by ~0.1s between the first five
        assert source.requests[5].at - source.requests[4].answered_at >= 0.95, gaps  # the cooldown (1s)


async def test_metrics_through_a_failure_and_a_recovery(make_poller: PollerFactory) -> None:
    recovered = asyncio.Event()
    item_time = time.time() - 120
    async with poll_source() as source:
        # Fail once; then items (one 2 minutes old), held until the test has looked at the metrics;
        # then an overlapping page with an ETag, then 304s.
        first_page = json_page({"items": [{"id": "a", "at": item_time}, {"id": "b"}, {"id": "c"}]})
        source.queue("/items", status(503), held(first_page, recovered))
        source.route("/items", json_page({"items": [{"id": "b"}, {"id": "c"}, {"id": "d"}]}, etag='"e3"'))
        poll = items_poll(source, interval="1s")
        poller = await make_poller(specs_yaml(poll_connector("api", poll)))

        await until(lambda: len(source.requests) == 2, 5, "the retry after the failed run")
        assert runs(poller, "failed") == 1
        assert metric(poller, "hub_poll_backoff_seconds") > 0
        assert metric(poller, "hub_poll_consecutive_failures") == 1
        assert metric(poller, "hub_poll_run_duration_seconds_count") == 1
        recovered.set()

        await until(lambda: runs(poller, "not_modified") >= 1, 10, "a run answered 304")
        # One synchronous read: every counter of a run moves before the next run starts.
        outcomes = {o: runs(poller, o) for o in ("ok", "failed", "not_modified")}
        duration_count = metric(poller, "hub_poll_run_duration_seconds_count")
        assert outcomes["ok"] == 2
        assert outcomes["failed"] == 1
        assert duration_count == sum(outcomes.values())
        assert metric(poller, "hub_poll_items_published_total") == 4  # a, b, c, then d
        assert metric(poller, "hub_poll_duplicates_total") == 2  # b and c again
        assert 120 <= metric(poller, "hub_poll_lag_seconds") < 180  # set by the run that saw item a
        assert metric(poller, "hub_poll_backoff_seconds") == 0
        assert metric(poller, "hub_poll_consecutive_failures") == 0
        assert [e["id"] for e in await poller.events()] == ["a", "b", "c", "d"]


BIG = 9 * 1024 * 1024
"""Under the poll client's 10 MB body cap, over the bus's 8 MB max_payload (the embedded nats-server's)."""

BAD_SOURCES: dict[str, tuple[dict[str, Any], Any]] = {
    # Parsed as a time, but out of range once converted to UTC for the envelope.
    "item time out of range": ({}, {"items": [{"id": "x", "at": "9999-12-31T23:59:59-01:00"}]}),
    # Not a URL that can be joined to the page's.
    "next link not a url": ({"pagination": {"nextLink": "next"}}, {"items": [{"id": "x"}], "next": "http://[oops/"}),
    # One item the bus cannot take.
    "item over the bus limit": ({}, {"items": [{"id": "x", "blob": "a" * BIG}]}),
}


@pytest.mark.parametrize("case", list(BAD_SOURCES))
async def test_one_source_going_wrong_does_not_stop_the_others(make_poller: PollerFactory, case: str) -> None:
    """Whatever one source answers, the scheduler keeps running the others, and a source's bad data
    is reported as such."""
    overrides, body = BAD_SOURCES[case]
    async with poll_source() as source:
        source.route("/items", json_page(OK_PAGE))
        source.route("/bad", json_page(body))
        bad = items_poll(source, request={"url": source.url("/bad")}, interval="1h") | overrides
        poller = await make_poller(
            specs_yaml(poll_connector("bad", bad), poll_connector("api", items_poll(source, interval="1s")))
        )

        def two_runs() -> bool:
            if poller.polling.task.done():
                raise AssertionError(f"the poll scheduler stopped: {poller.polling.task.exception()!r}")
            return runs(poller, "ok") >= 2

        await until(lambda: bool(source.seen("/bad")), 5, "the bad source polled")
        await until(two_runs, 10, "the good source polled twice")
        assert not poller.polling.task.done()
        # What the source sent is the source's problem, named as such: "internal error" is the
        # scheduler's catch-all for a bug in the hub.
        bad_status = await poller.status("acme", "bad")
        assert not bad_status.get("lastError", "").startswith("internal error"), bad_status
