"""RSS and Atom feeds, read with feedparser: one event per entry, keyed by the entry's id.

A feed has no cursor: it is a window of recent entries, and the hub de-duplicates by id, so the
ids must be stable (the entry's `id`/`guid`, else its link, never something derived from the
parse). The body is handed to feedparser as a stream: given a string or bytes it may fetch a URL
or open a local file of that name, and a poller never does I/O of its own.
"""

from __future__ import annotations

import asyncio
import calendar
import io
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import feedparser

from adapters.base import NormalizedEvent
from adapters.pollers.base import (
    FetchRequest,
    FetchResponse,
    InvalidPayload,
    Page,
    PollClient,
    Poller,
    PollState,
    event_type,
)
from adapters.pollers.http_json import first_request, next_state


class RssPoller(Poller):
    """RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 feeds."""

    name: ClassVar[str] = "rss"

    async def fetch_page(self, client: PollClient, state: PollState, request: FetchRequest | None) -> Page:
        """Fetch the feed (conditionally) and turn its entries into events; feeds have no next page."""
        first = request is None
        response = await client.fetch(first_request(self.settings, state) if request is None else request)
        if response.status == 304:
            return Page([], state, not_modified=True)
        # feedparser is pure Python and takes seconds on a feed near the body cap: reading it on the
        # event loop would stall every tenant's requests, so a worker thread does it
        events = await asyncio.to_thread(self._events, response)
        times = [event.time.timestamp() for event in events if event.time is not None]
        return Page(
            events,
            next_state(state, response, first, None),
            newest_item_time=max(times) if times else None,
        )

    def _events(self, response: FetchResponse) -> list[NormalizedEvent]:
        headers = {"content-location": response.url}
        content_type = response.header("content-type")
        if content_type is not None:
            headers["content-type"] = content_type
        parsed = feedparser.parse(io.BytesIO(response.body), response_headers=headers)
        entries: list[Any] = list(parsed.get("entries") or [])
        if not entries and (parsed.get("bozo") or not parsed.get("version")):
            problem = parsed.get("bozo_exception") or "no feed found"
            raise InvalidPayload(f"not an RSS or Atom feed: {' '.join(str(problem).split())[:200]}")
        feed_title = _text(parsed.get("feed", {}).get("title"))
        return [self._event(index, entry, feed_title) for index, entry in enumerate(entries)]

    def _event(self, index: int, entry: Any, feed_title: str | None) -> NormalizedEvent:
        link = _text(_raw(entry, "link"))
        entry_id = _text(_raw(entry, "id")) or link  # feedparser stores an RSS guid as id
        if entry_id is None:
            raise InvalidPayload(f"entry {index} has no id, guid or link")
        published = _time(_raw(entry, "published_parsed"))
        updated = _time(_raw(entry, "updated_parsed"))
        data = {
            "id": entry_id,
            "title": _text(_raw(entry, "title")),
            "link": link,
            "summary": _text(_raw(entry, "summary")),
            "published": published.isoformat() if published else None,
            "updated": updated.isoformat() if updated else None,
            "author": _text(_raw(entry, "author")),
            "feed_title": feed_title,
        }
        return NormalizedEvent(
            id=entry_id,
            type=event_type(self.provider, None, "entry"),
            data=data,
            subject=link,
            time=published or updated,
        )


def _raw(entry: Any, key: str) -> Any:
    """A value as feedparser stored it, without its deprecated aliases (`updated` -> `published`)."""
    return dict.get(entry, key) if isinstance(entry, dict) else None


def _text(value: Any) -> str | None:
    """A non-empty string from feedparser, else None (it may give other types for odd markup)."""
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    return None


def _time(value: Any) -> datetime | None:
    """feedparser's UTC struct_time as an aware datetime."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (ValueError, OverflowError, OSError):
        return None
