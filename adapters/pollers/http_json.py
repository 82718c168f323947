"""Generic JSON APIs: a templated request, JMESPath item selectors, a cursor, and next-page links.

The stored cursor goes into the first request of a run (`{cursor}` in the URL, query values and
POST body); the response's items become events keyed by their own id, and the new cursor comes
from the response (or its last item). Conditional-request validators are sent and taken only on
the first page: later pages are other resources, and their ETags would not describe the run's
starting point.

The selectors are the tenant's and the response is the network's, so every selector runs within
one budget per page (`schemas.bounded_jmespath`), proportional to the page's size: a selector
that would cost more fails the run with `InvalidPayload` naming it, instead of stalling the hub.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlencode, urljoin, urlsplit, urlunsplit

import orjson
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel

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
from schemas.bounded_jmespath import BoundedExpression, Budget, BudgetExceeded
from schemas.poll import CURSOR_PLACEHOLDER, PollSettings

PAGE_BASE_UNITS = 100_000
PAGE_UNITS_PER_BYTE = 2
"""A page's selectors may cost the base plus this much per byte of the response: selecting the items
and reading a few fields of each is a small multiple of the response's size, anything far beyond
that is an expression amplifying it."""
PAGE_SECONDS = 1.0
"""The wall-clock backstop of all the selectors of one page."""

# One link-value of RFC 8288: `<target>` then `; name=value` parameters (values quoted or tokens).
_LINK = re.compile(r'<([^>]*)>((?:\s*;\s*[^\s;,="]+\s*(?:=\s*(?:"(?:[^"\\]|\\.)*"|[^\s;,"]*))?)*)')
_LINK_PARAM = re.compile(r';\s*([^\s;,="]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^\s;,"]*))?')


def first_request(settings: PollSettings, state: PollState) -> FetchRequest:
    """The first request of a run: the spec's templates filled with the stored cursor, plus validators."""
    spec = settings.request
    cursor = state.cursor if state.cursor is not None else (settings.initialCursor or "")
    url = spec.url.replace(CURSOR_PLACEHOLDER, quote(cursor, safe=""))
    if spec.query:
        query = urlencode({name: value.replace(CURSOR_PLACEHOLDER, cursor) for name, value in spec.query.items()})
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(query=f"{parts.query}&{query}" if parts.query else query))
    headers = dict(spec.headers)
    if state.etag is not None:
        headers["If-None-Match"] = state.etag
    if state.last_modified is not None:
        headers["If-Modified-Since"] = state.last_modified
    body = spec.body.replace(CURSOR_PLACEHOLDER, cursor).encode() if spec.method == "POST" and spec.body else None
    return FetchRequest(url=url, method=spec.method, headers=headers, body=body)


def next_state(state: PollState, response: FetchResponse, first: bool, cursor: str | None) -> PollState:
    """The state after a page: the new cursor (else the old one), validators from the run's first page."""
    return PollState(
        cursor=cursor if cursor is not None else state.cursor,
        etag=response.header("etag") if first else state.etag,
        last_modified=response.header("last-modified") if first else state.last_modified,
    )


def next_link(header: str | None, base_url: str) -> str | None:
    """The `rel="next"` target of a `Link` header (RFC 8288), resolved against the response URL."""
    for link in _LINK.finditer(header or ""):
        for param in _LINK_PARAM.finditer(link.group(2)):
            if param.group(1).lower() != "rel" or param.group(2) is None:
                continue
            rels = param.group(2).strip('"').lower().split()
            if "next" in rels:
                return urljoin(base_url, str(link.group(1)).strip())
    return None


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string or epoch seconds as an aware datetime; anything else is None.

    A string without an offset is taken as UTC: APIs that omit it almost always mean UTC, and an
    event time is informational (it never decides order or dedupe).
    """
    try:
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().upper())
            # In UTC here, so a time that cannot be one (year 9999 with a negative offset) is None.
            return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


class HttpJsonPoller(Poller):
    """Any JSON API described by `spec.poll.items` (and optionally `spec.poll.pagination`)."""

    name: ClassVar[str] = "http_json"

    def __init__(self, provider: str, settings: PollSettings, options: BaseModel) -> None:
        super().__init__(provider, settings, options)
        items = settings.items
        if items is None:
            raise ValueError("http_json needs items.id")
        self._cursor_from_last_item = items.cursorFrom == "lastItem"
        self._path = BoundedExpression(items.path)
        self._id = BoundedExpression(items.id)
        self._fields: dict[str, BoundedExpression | None] = {
            "items.time": _compile(items.time),
            "items.type": _compile(items.type),
            "items.subject": _compile(items.subject),
            "items.cursor": _compile(items.cursor),
            "pagination.nextLink": _compile(settings.pagination.nextLink),
        }

    @classmethod
    def check_settings(cls, settings: PollSettings) -> list[tuple[str, str]]:
        """`items` (at least `items.id`) says how to read the response; without it there is nothing to read."""
        if settings.items is None:
            return [("items", "http_json needs items.id (and items.path unless the response is the list)")]
        return []

    async def fetch_page(self, client: PollClient, state: PollState, request: FetchRequest | None) -> Page:
        """Fetch one page and read its items, the next cursor and the next page's URL."""
        first = request is None
        response = await client.fetch(first_request(self.settings, state) if request is None else request)
        if response.status == 304:
            return Page([], state, not_modified=True)
        try:
            body = orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"the response is not JSON: {exc}") from None
        budget = Budget(PAGE_BASE_UNITS + PAGE_UNITS_PER_BYTE * len(response.body), PAGE_SECONDS)
        items = _search("items.path", self._path, body, budget, sized=True)  # sized: items become events
        if items is None:
            items = []
        elif not isinstance(items, list):
            raise InvalidPayload("items.path did not select a list")
        events = [self._event(index, item, budget) for index, item in enumerate(items)]
        times = [event.time.timestamp() for event in events if event.time is not None]
        cursor = self._cursor(body, items, budget)
        return Page(
            events,
            next_state(state, response, first, cursor),
            next_request=self._next_request(body, response, budget),
            newest_item_time=max(times) if times else None,
        )

    def _event(self, index: int, item: Any, budget: Budget) -> NormalizedEvent:
        item_id = _search("items.id", self._id, item, budget)
        if item_id is None or item_id == "":
            raise InvalidPayload(f"item {index} has no id")
        if isinstance(item_id, bool) or not isinstance(item_id, str | int):
            raise InvalidPayload(f"item {index} id is not a string or an integer")
        subject = self._field("items.subject", item, budget)
        return NormalizedEvent(
            id=str(item_id),
            type=event_type(self.provider, self._field("items.type", item, budget), "item"),
            data=item,
            subject=subject if isinstance(subject, str) and subject else None,
            time=parse_time(self._field("items.time", item, budget)),
        )

    def _cursor(self, body: Any, items: list[Any], budget: Budget) -> str | None:
        """The new cursor, or None to keep the old one (no expression, no last item, null or empty)."""
        if self._cursor_from_last_item:
            if not items:
                return None
            value = self._field("items.cursor", items[-1], budget)
        else:
            value = self._field("items.cursor", body, budget)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidPayload("items.cursor did not select a string or a number")
        return str(value)

    def _next_request(self, body: Any, response: FetchResponse, budget: Budget) -> FetchRequest | None:
        try:
            if self.settings.pagination.linkHeader:
                url = next_link(response.header("link"), response.url)
            else:
                link = self._field("pagination.nextLink", body, budget)
                url = urljoin(response.url, link.strip()) if isinstance(link, str) and link.strip() else None
        except ValueError:  # urljoin on something that is not a URL (`http://[oops/`)
            source = "the Link header's next" if self.settings.pagination.linkHeader else "pagination.nextLink"
            raise InvalidPayload(f"{source} is not a URL") from None
        return FetchRequest(url, headers=dict(self.settings.request.headers)) if url is not None else None

    def _field(self, name: str, data: Any, budget: Budget) -> Any:
        expression = self._fields[name]
        return None if expression is None else _search(name, expression, data, budget)


def _compile(expression: str | None) -> BoundedExpression | None:
    return None if expression is None else BoundedExpression(expression)


def _search(name: str, expression: BoundedExpression, data: Any, budget: Budget, *, sized: bool = False) -> Any:
    """Evaluate a compiled expression within the page's budget; a failure on this data is the payload's
    fault, an exhausted budget the selector's (or both), each named by field."""
    try:
        return expression.search(data, budget, sized=sized)
    except (JMESPathError, TypeError, ValueError) as exc:
        raise InvalidPayload(f"{name} could not be evaluated on the response: {exc}") from None
    except BudgetExceeded as exc:
        raise InvalidPayload(f"{name} exceeded the evaluation budget of this page: {exc}") from None
