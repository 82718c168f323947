"""http_json poller: request templating, validators, item selection, cursors, pagination, registry."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.pollers.base import FetchRequest, FetchResponse, InvalidPayload, PollState
from adapters.pollers.http_json import HttpJsonPoller, next_link
from adapters.pollers.rss import RssPoller
from adapters.registry import POLLERS, UnknownPollerError, poller
from schemas.poll import PollSettings

API = "https://api.example.com/v1/events"
EMPTY = PollState()


class FakeClient:
    """Records every request and answers with the canned responses in order."""

    def __init__(self, *responses: FetchResponse) -> None:
        self.responses = list(responses)
        self.requests: list[FetchRequest] = []

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        self.requests.append(request)
        return self.responses.pop(0)


def settings(**overrides: Any) -> PollSettings:
    spec: dict[str, Any] = {
        "kind": "http_json",
        "interval": "1m",
        "request": {"url": API + "?since={cursor}", "headers": {"Accept": "application/json"}},
        "items": {"path": "data", "id": "id"},
    }
    spec.update(overrides)
    return PollSettings.model_validate(spec)


def make(**overrides: Any) -> HttpJsonPoller:
    configured = HttpJsonPoller.configure("acme", settings(**overrides))
    assert isinstance(configured, HttpJsonPoller)
    return configured


def ok(body: Any, headers: Mapping[str, str] | None = None, url: str = API) -> FetchResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return FetchResponse(200, dict(headers or {}), raw, url)


async def first_request(state: PollState = EMPTY, **overrides: Any) -> FetchRequest:
    client = FakeClient(ok({"data": []}))
    await make(**overrides).fetch_page(client, state, None)
    return client.requests[0]


def test_items_are_required() -> None:
    without = settings(items=None)
    assert HttpJsonPoller.check_settings(without)[0][0] == "items"
    assert "items.id" in HttpJsonPoller.check_settings(without)[0][1]
    assert HttpJsonPoller.check_settings(settings()) == []
    with pytest.raises(ValueError, match=r"items\.id"):
        HttpJsonPoller.configure("acme", without)


def test_registry_knows_both_pollers() -> None:
    assert poller("http_json") is HttpJsonPoller
    assert poller("rss") is RssPoller
    assert {"http_json", "rss"} <= set(POLLERS)  # a subset: registering another poller needs no edit here
    with pytest.raises(UnknownPollerError, match="unknown poller 'no-such-poller'; known: ") as unknown:
        poller("no-such-poller")
    assert all(name in str(unknown.value) for name in ("http_json", "rss"))


async def test_stored_cursor_is_url_encoded_in_the_url() -> None:
    request = await first_request(PollState(cursor="2024-01-01T00:00:00+00:00 &x"))
    assert request.url == API + "?since=2024-01-01T00%3A00%3A00%2B00%3A00%20%26x"
    assert request.method == "GET"
    assert request.body is None


async def test_initial_cursor_then_empty_cursor() -> None:
    assert (await first_request(initialCursor="abc")).url == API + "?since=abc"
    assert (await first_request(PollState(cursor="stored"), initialCursor="abc")).url == API + "?since=stored"
    assert (await first_request()).url == API + "?since="


async def test_query_values_are_templated_encoded_and_merged() -> None:
    request = {"url": API + "?fixed=1", "query": {"after": "{cursor}", "q": "a b&c"}}
    sent = await first_request(PollState(cursor="x/y+z"), request=request)
    assert sent.url == API + "?fixed=1&after=x%2Fy%2Bz&q=a+b%26c"
    sent = await first_request(PollState(cursor="c"), request={"url": API, "query": {"after": "{cursor}"}})
    assert sent.url == API + "?after=c"


async def test_post_body_gets_the_raw_cursor_and_spec_headers() -> None:
    request = {"url": API, "method": "POST", "headers": {"X-Api": "1"}, "body": '{"after": "{cursor}"}'}
    sent = await first_request(PollState(cursor="a/b c"), request=request)
    assert sent.method == "POST"
    assert sent.body == b'{"after": "a/b c"}'
    assert sent.headers == {"X-Api": "1"}


async def test_conditional_headers_only_on_the_first_page() -> None:
    state = PollState(cursor="c", etag='W/"abc"', last_modified="Tue, 02 Jan 2024 00:00:00 GMT")
    sent = await first_request(state)
    assert sent.headers["If-None-Match"] == 'W/"abc"'
    assert sent.headers["If-Modified-Since"] == "Tue, 02 Jan 2024 00:00:00 GMT"
    assert sent.headers["Accept"] == "application/json"
    assert "If-None-Match" not in (await first_request(PollState(cursor="c"))).headers

    client = FakeClient(ok({"data": [], "next": "/v1/events?page=2"}), ok({"data": []}))
    subject = make(pagination={"nextLink": "next"})
    page = await subject.fetch_page(client, state, None)
    assert page.next_request is not None
    await subject.fetch_page(client, page.state, page.next_request)
    assert client.requests[1].headers == {"Accept": "application/json"}


async def test_not_modified_keeps_the_state() -> None:
    state = PollState(cursor="c", etag='"e"')
    page = await make().fetch_page(FakeClient(FetchResponse(304, {}, b"", API)), state, None)
    assert page.not_modified
    assert page.events == []
    assert page.state == state
    assert page.next_request is None


async def test_items_become_events() -> None:
    body = {
        "data": [
            {"id": 17, "at": "2024-03-01T12:00:00Z", "kind": "order.created", "who": "cust_1"},
            {"id": "b", "at": 1709294400.5, "kind": None, "who": 5},
            {"id": "c", "at": "not a time"},
        ]
    }
    items = {"path": "data", "id": "id", "time": "at", "type": "kind", "subject": "who"}
    page = await make(items=items).fetch_page(FakeClient(ok(body)), PollState(), None)
    first, second, third = page.events
    assert [e.id for e in page.events] == ["17", "b", "c"]
    assert first.time == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert second.time == datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert third.time is None
    assert [e.type for e in page.events] == ["acme.order.created", "acme.item", "acme.item"]
    assert [e.subject for e in page.events] == ["cust_1", None, None]
    assert first.data == body["data"][0]
    assert page.newest_item_time == 1709294400.5


async def test_time_with_offset_and_naive_time() -> None:
    body = [{"id": 1, "t": "2024-03-01T14:00:00+02:00"}, {"id": 2, "t": "2024-03-01T12:00:00"}]
    page = await make(items={"id": "id", "time": "t"}).fetch_page(FakeClient(ok(body)), PollState(), None)
    assert [e.time for e in page.events] == [datetime(2024, 3, 1, 12, tzinfo=UTC)] * 2
    assert all(e.time is not None and e.time.utcoffset() is not None for e in page.events)


async def test_null_items_are_an_empty_page() -> None:
    page = await make().fetch_page(FakeClient(ok({"data": None})), PollState(cursor="c"), None)
    assert page.events == []
    assert page.newest_item_time is None
    assert page.state.cursor == "c"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>busy</html>", "not JSON"),
        ({"data": {"id": 1}}, "items.path did not select a list"),
        ({"data": [{"id": 1}, {"name": "x"}]}, "item 1 has no id"),
        ({"data": [{"id": None}]}, "item 0 has no id"),
        ({"data": [{"id": {"nested": 1}}]}, "item 0 id is not"),
        ({"data": [{"id": True}]}, "item 0 id is not"),
    ],
)
async def test_unreadable_responses(body: Any, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        await make().fetch_page(FakeClient(ok(body)), PollState(), None)


async def test_expression_failing_on_the_data_names_the_field() -> None:
    subject = make(items={"path": "data", "id": "id", "time": "abs(at)"})
    with pytest.raises(InvalidPayload, match=r"items\.time"):
        await subject.fetch_page(FakeClient(ok({"data": [{"id": 1, "at": "x"}]})), PollState(), None)


@pytest.mark.parametrize(
    ("items", "body", "cursor"),
    [
        ({"cursor": "meta.next"}, {"data": [{"id": 1}], "meta": {"next": "n2"}}, "n2"),
        ({"cursor": "meta.next"}, {"data": [{"id": 1}], "meta": {"next": 42}}, "42"),
        ({"cursor": "meta.next"}, {"data": [{"id": 1}], "meta": {"next": None}}, "old"),
        ({"cursor": "meta.next"}, {"data": [{"id": 1}], "meta": {"next": ""}}, "old"),
        ({}, {"data": [{"id": 1}]}, "old"),
        ({"cursor": "ts", "cursorFrom": "lastItem"}, {"data": [{"id": 1, "ts": 10}, {"id": 2, "ts": 20}]}, "20"),
        ({"cursor": "ts", "cursorFrom": "lastItem"}, {"data": []}, "old"),
    ],
)
async def test_cursor(items: dict[str, str], body: Any, cursor: str) -> None:
    subject = make(items={"path": "data", "id": "id", **items})
    page = await subject.fetch_page(FakeClient(ok(body)), PollState(cursor="old"), None)
    assert page.state.cursor == cursor


async def test_cursor_of_the_wrong_type() -> None:
    subject = make(items={"path": "data", "id": "id", "cursor": "meta"})
    with pytest.raises(InvalidPayload, match=r"items\.cursor"):
        await subject.fetch_page(FakeClient(ok({"data": [], "meta": {"a": 1}})), PollState(), None)


@pytest.mark.parametrize(
    ("link", "url"),
    [
        ("/v1/events?page=2", "https://api.example.com/v1/events?page=2"),
        ("events?page=2", "https://api.example.com/v1/events?page=2"),
        ("https://cdn.example.com/p/2", "https://cdn.example.com/p/2"),
        (None, None),
    ],
)
async def test_next_link_from_the_body(link: str | None, url: str | None) -> None:
    subject = make(pagination={"nextLink": "links.next"})
    response = ok({"data": [], "links": {"next": link}}, url=API + "?page=1")
    page = await subject.fetch_page(FakeClient(response), PollState(), None)
    assert page.next_request == (FetchRequest(url, headers={"Accept": "application/json"}) if url else None)
    page = await make().fetch_page(FakeClient(response), PollState(), None)  # no pagination configured
    assert page.next_request is None


async def test_next_link_from_the_link_header() -> None:
    header = (
        '<https://api.example.com/v1/events?page=1>; rel="prev first", '
        '<https://api.example.com/v1/events?page=3> ; title="a, b;c" ; REL = "last" , '
        "</v1/events?page=2&per_page=50>; rel=next"
    )
    subject = make(pagination={"linkHeader": True})
    page = await subject.fetch_page(FakeClient(ok({"data": []}, {"link": header})), PollState(), None)
    assert page.next_request is not None
    assert page.next_request.url == "https://api.example.com/v1/events?page=2&per_page=50"
    page = await subject.fetch_page(FakeClient(ok({"data": []}, {"link": header.split(", <")[0]})), PollState(), None)
    assert page.next_request is None


def test_link_header_parsing() -> None:
    assert next_link('<a?x=1>; rel="next last"', "https://h/p/q") == "https://h/p/a?x=1"
    assert next_link('<https://h/2>;rel="NEXT"', "https://h/") == "https://h/2"
    assert next_link('<https://h/2>; title="rel=next"', "https://h/") is None
    assert next_link(None, "https://h/") is None
    assert next_link("garbage", "https://h/") is None


async def test_validators_come_from_the_first_page_and_carry_across_pages() -> None:
    first = ok({"data": [{"id": 1}], "next": "?page=2"}, {"etag": '"v2"', "last-modified": "Wed, 03 Jan 2024"})
    second = ok({"data": [{"id": 2}]}, {"etag": '"page2"', "last-modified": "Thu, 04 Jan 2024"})
    client = FakeClient(first, second)
    subject = make(pagination={"nextLink": "next"})
    page = await subject.fetch_page(client, PollState(cursor="c", etag='"v1"', last_modified="Mon"), None)
    assert page.state == PollState(cursor="c", etag='"v2"', last_modified="Wed, 03 Jan 2024")
    assert page.next_request is not None
    page = await subject.fetch_page(client, page.state, page.next_request)
    assert page.state == PollState(cursor="c", etag='"v2"', last_modified="Wed, 03 Jan 2024")
    assert client.requests[1].url == API + "?page=2"
    page = await subject.fetch_page(FakeClient(ok({"data": []})), page.state, None)  # a new run without them
    assert page.state == PollState(cursor="c")
