"""The history reader on a real nats-server: subject filters, type globs, time ranges, ids, both orders,
and cursors that visit every event exactly once; a tenant never reads another tenant's events."""

from __future__ import annotations

import dataclasses
import time

import pytest
from nats.aio.client import Client as NATS

from events.envelope import Envelope
from hub.history.events import (
    EventItem,
    EventQuery,
    HistoryError,
    NotFound,
    list_events,
    parse_limit,
    parse_time,
    show_event,
    subject_filter,
)
from tests.hub.gate.harness import envelope, publish_event

pytestmark = pytest.mark.integration


@pytest.fixture
def nc(streams_nc: NATS) -> NATS:
    return streams_nc


async def store(nc: NATS, events: list[Envelope]) -> None:
    js = nc.jetstream()
    for event in events:
        await publish_event(js, event)


def mixed(count: int) -> list[Envelope]:
    """acme/sparse gets every 10th event, acme/dense the others, globex/gh one in 25 (interleaved)."""
    events = []
    for n in range(count):
        if n % 25 == 3:
            events.append(envelope("globex", "gh", "github.push", event_id=f"g{n}"))
        elif n % 10 == 0:
            events.append(envelope("acme", "sparse", "github.pull_request.opened", event_id=f"s{n}"))
        else:
            kind = "github.push" if n % 2 else "github.pull_request.closed"
            events.append(envelope("acme", "dense", kind, event_id=f"d{n}"))
    return events


async def every_page(nc: NATS, caller: str | None, query: EventQuery) -> list[list[EventItem]]:
    pages = []
    cursor = None
    for _ in range(1000):
        page = await list_events(nc, caller, dataclasses.replace(query, cursor=cursor))
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages
    raise AssertionError("cursors never ended")


def ids(pages: list[list[EventItem]]) -> list[str]:
    return [item.id for page in pages for item in page]


@pytest.mark.parametrize("limit", [1, 7, 50])
@pytest.mark.parametrize("newest_first", [True, False])
async def test_cursors_visit_every_event_of_a_connector_once(nc: NATS, limit: int, newest_first: bool) -> None:
    events = mixed(400)
    await store(nc, events)
    for connector in ("sparse", "dense"):
        expected = [e.id for e in events if e.hubconnector == connector]
        query = EventQuery(tenant="acme", connector=connector, newest_first=newest_first, limit=limit)
        pages = await every_page(nc, None, query)
        got = ids(pages)
        assert got == (expected[::-1] if newest_first else expected)
        assert all(len(page) <= limit for page in pages)


async def test_items_carry_the_event_attributes(nc: NATS) -> None:
    event = envelope("acme", "gh", "github.pull_request.opened", event_id="x-1")
    await store(nc, [event])
    (item,) = (await list_events(nc, "acme", EventQuery(connector="gh"))).items
    assert item.as_dict() == {
        "sequence": 1,
        "id": "x-1",
        "type": "github.pull_request.opened",
        "time": event.time,
        "receivedAt": event.hubreceivedat,
        "subject": "hub.events.acme.gh.github.pull_request.opened",
        "tenant": "acme",
        "connector": "gh",
        "size": len(event.to_json()),
    }


async def test_tenant_subject_and_type_filters(nc: NATS) -> None:
    events = mixed(120)
    await store(nc, events)
    acme = [e.id for e in events if e.hubtenant == "acme"]
    assert ids(await every_page(nc, "acme", EventQuery(limit=30))) == acme[::-1]
    assert ids(await every_page(nc, None, EventQuery(tenant="acme", newest_first=False, limit=500))) == acme
    everything = await every_page(nc, None, EventQuery(newest_first=False, limit=500))
    assert ids(everything) == [e.id for e in events]

    pattern = EventQuery(subject="hub.events.acme.*.github.pull_request.>", newest_first=False, limit=13)
    pulls = [e.id for e in events if e.hubtenant == "acme" and e.type.startswith("github.pull_request.")]
    assert ids(await every_page(nc, "acme", pattern)) == pulls

    glob = EventQuery(tenant="acme", connector="dense", type_glob="github.pull_*", limit=9)
    closed = [e.id for e in events if e.hubconnector == "dense" and e.type == "github.pull_request.closed"]
    assert ids(await every_page(nc, None, glob)) == closed[::-1]
    across = EventQuery(tenant="acme", type_glob="*.opened", newest_first=False)
    assert ids(await every_page(nc, None, across)) == [e.id for e in events if e.type.endswith(".opened")]


async def test_time_range_and_id(nc: NATS) -> None:
    first, second = mixed(60), [envelope("acme", "dense", "github.push", event_id=f"late{n}") for n in range(5)]
    await store(nc, first)
    between = time.time()
    await store(nc, second)
    late = [e.id for e in second]
    for newest_first in (True, False):
        since = EventQuery(tenant="acme", connector="dense", since=between, newest_first=newest_first, limit=2)
        assert sorted(ids(await every_page(nc, None, since))) == sorted(late)
        until = EventQuery(tenant="acme", connector="dense", until=between, newest_first=newest_first, limit=20)
        early = [e.id for e in first if e.hubconnector == "dense"]
        assert ids(await every_page(nc, None, until)) == (early[::-1] if newest_first else early)
        later = EventQuery(tenant="acme", since=time.time() + 3600, newest_first=newest_first)
        assert (await list_events(nc, None, later)).items == []  # a range after every event holds none
    by_id = await list_events(nc, None, EventQuery(tenant="acme", event_id="d11"))
    assert [item.id for item in by_id.items] == ["d11"]
    assert (await list_events(nc, None, EventQuery(event_id="nope"))).items == []


async def test_a_tenant_reads_only_its_own_events(nc: NATS) -> None:
    await store(nc, mixed(60))
    with pytest.raises(NotFound):
        await list_events(nc, "acme", EventQuery(tenant="globex"))
    with pytest.raises(HistoryError) as refused:
        await list_events(nc, "acme", EventQuery(subject="hub.events.globex.>"))
    assert refused.value.parameter == "subject"
    with pytest.raises(HistoryError):
        await list_events(nc, "acme", EventQuery(subject="hub.events.*.gh.>"))
    own = await list_events(nc, "acme", EventQuery(limit=500))
    assert own.items
    assert {item.tenant for item in own.items} == {"acme"}
    with pytest.raises(NotFound):
        await show_event(nc, "acme", "globex", "gh", "g3")
    assert (await show_event(nc, None, "globex", "gh", "g3")).envelope["id"] == "g3"


def test_parameters_are_checked_by_name() -> None:
    cases = [
        (lambda: parse_limit("0"), "limit"),
        (lambda: parse_limit("501"), "limit"),
        (lambda: parse_limit("ten"), "limit"),
        (lambda: parse_time("since", "yesterday"), "since"),
        (lambda: subject_filter(EventQuery(subject="svc.acme.>"), None), "subject"),
        (lambda: subject_filter(EventQuery(subject="hub.events.acme.a>b"), None), "subject"),
        (lambda: subject_filter(EventQuery(connector="gh"), None), "tenant"),
    ]
    for call, parameter in cases:
        with pytest.raises(HistoryError) as error:
            call()
        assert error.value.parameter == parameter
    assert parse_time("until", "2026-01-02T03:04:05Z") == 1767323045.0
    assert parse_time("since", "15m", now=1000.0) == 100.0
    assert subject_filter(EventQuery(tenant="acme", connector="gh", type_glob="github.pull_*"), None) == (
        "hub.events.acme.gh.github.>"
    )


async def test_a_bad_cursor_names_the_cursor(nc: NATS) -> None:
    await store(nc, mixed(5))
    page = await list_events(nc, None, EventQuery(limit=1))
    assert page.next_cursor is not None
    for cursor in ("%%%", "bm90LWpzb24", page.next_cursor):
        with pytest.raises(HistoryError) as error:
            await list_events(nc, None, EventQuery(cursor=cursor, newest_first=False))
        assert error.value.parameter == "cursor"
