"""The Events page: the stored events the key may read, filtered (tenant for operators, connector,
type glob, time range, event id), newest or oldest first, a page at a time with cursor links; and the
fragment of rows stored after the newest one shown, which console.js prepends every few seconds
(without JavaScript, the page's "Refresh" link shows them).

The listing is hub/history/events.py's `list_events`, called with the key's tenant as the admin
API's `GET /v1/events` calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from events.directget import HistoryUnavailable
from events.subjects import is_name
from hub.console.call import Call
from hub.console.refusal import Refusal, not_found
from hub.console.selection import SelectionFields, typed_values
from hub.history.events import EventItem, EventPage, EventQuery, HistoryError, NotFound, list_events, parse_time

ORDERS = {"newest": True, "oldest": False}
PAGE_SIZE = 50
MAX_FIELD_CHARS = 256
BASE = "/console/events"


@dataclass(frozen=True, slots=True)
class EventFilters(SelectionFields):
    """The filter form's fields as typed ('' when empty); a listing is a link of them."""

    order: str = "newest"

    @classmethod
    def of(cls, query: Mapping[str, str]) -> EventFilters:
        """From a query string; values cut to MAX_FIELD_CHARS (the reader checks them)."""
        values = typed_values(query, (f.name for f in fields(cls)), MAX_FIELD_CHARS)
        return cls(**values | {"order": values["order"] or "newest"})

    def link(self, path: str = BASE, **extra: str) -> str:
        """`path` with these filters (and `extra`) as its query."""
        fields = {k: v for k, v in (asdict(self) | extra).items() if v and not (k == "order" and v == "newest")}
        return f"{path}?{urlencode(fields)}" if fields else path


@dataclass(frozen=True, slots=True)
class Row:
    """An event of the listing and the link to its page."""

    item: EventItem
    href: str


def event_href(tenant: str, connector: str, event_id: str) -> str:
    """The Event page of an event (its id percent-encoded as one path segment)."""
    return f"{BASE}/{tenant}/{connector}/{quote(event_id, safe='')}"


def asked_tenant(call: Call, tenant: str) -> str | None:
    """The tenant a form names, in the key's reach (another tenant: the audited 404 of one out of
    reach); None when it names none."""
    if not tenant:
        return None
    call.viewer.require_tenant(tenant)
    if not is_name(tenant):
        raise not_found("No such tenant.")
    return tenant


def event_query(
    call: Call, filters: EventFilters, cursor: str | None, *, newest_first: bool | None = None
) -> EventQuery:
    """The reader's query; HistoryError naming a malformed field."""
    if filters.order not in ORDERS:
        raise HistoryError("order", "order must be newest or oldest")
    if filters.connector and not is_name(filters.connector):
        raise HistoryError("connector", "connector must be a name ([a-z0-9-], 1-63 characters)")
    return EventQuery(
        tenant=asked_tenant(call, filters.tenant),
        connector=filters.connector or None,
        type_glob=filters.type or None,
        since=parse_time("since", filters.since) if filters.since else None,
        until=parse_time("until", filters.until) if filters.until else None,
        event_id=filters.id or None,
        newest_first=ORDERS[filters.order] if newest_first is None else newest_first,
        cursor=cursor,
        limit=PAGE_SIZE,
    )


async def read_page(call: Call, query: EventQuery) -> EventPage:
    """`list_events` for the key's tenant; NotFound and an unreachable stream as refusals."""
    try:
        return await list_events(call.console.nc, call.viewer.tenant, query)
    except NotFound:
        raise not_found("No such connector.") from None
    except HistoryUnavailable as exc:
        raise Refusal(503, "history_unavailable", str(exc), audited=False) from None


def rows_of(page: EventPage) -> list[Row]:
    return [Row(item, event_href(item.tenant, item.connector, item.id)) for item in page.items]


async def events_page(call: Call) -> web.StreamResponse:
    """GET /console/events?tenant=&connector=&type=&since=&until=&id=&order=&cursor=."""
    filters = EventFilters.of(call.request.query)
    cursor = call.request.query.get("cursor") or None
    values: dict[str, Any] = {"title": "Events", "filters": filters, "refresh": filters.link()}
    try:
        page = await read_page(call, event_query(call, filters, cursor))
    except HistoryError as exc:  # the form again, its wrong field named (never its value)
        values |= {"rows": [], "error": str(exc), "invalid": exc.parameter, "first_page": False, "next_link": None}
        values["live"] = None
        return call.render("events.html", 400, **values)
    rows = rows_of(page)
    live_ok = filters.order == "newest" and cursor is None
    values |= {
        "rows": rows,
        "error": None,
        "invalid": None,
        "first_page": cursor is not None,
        "next_link": filters.link(cursor=page.next_cursor) if page.next_cursor else None,
        "live": filters.link(f"{BASE}/newer") if live_ok else None,
        "after": max((r.item.sequence for r in rows), default=0),
    }
    return call.render("events.html", **values)


async def newer_rows(call: Call) -> web.StreamResponse:
    """GET /console/events/newer?<filters>&after=<sequence>: the rows stored after `after`, newest
    first (at most a page; `gap` says when more arrived than a page holds)."""
    after_text = call.request.query.get("after", "0")
    if not after_text.isdigit():
        raise Refusal(400, "bad_request", "after must be a stream sequence number.", audited=False)
    after = int(after_text)
    filters = EventFilters.of(call.request.query)
    try:
        query = event_query(call, filters, None, newest_first=True)
    except HistoryError as exc:
        raise Refusal(400, "bad_request", str(exc), audited=False) from None
    page = await read_page(call, query)
    rows = [row for row in rows_of(page) if row.item.sequence > after]
    newest = max((r.item.sequence for r in rows), default=after)
    gap = len(rows) == PAGE_SIZE and page.next_cursor is not None
    return call.render("events_newer.html", rows=rows, after=newest, gap=gap, refresh=filters.link())
