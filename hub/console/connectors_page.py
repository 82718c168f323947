"""The Connectors page: every connector the key sees, with its state, filtered, sorted and paged by
query parameters (so a listing is a link, and the page works without JavaScript)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web
from redis.exceptions import RedisError

from events.subjects import is_name
from hub.console.call import Call
from hub.console.refusal import Refusal, not_found
from hub.control.bulk_read import connectors_with_statuses
from hub.control.rates import Rates
from hub.control.specstore import StoredSpec
from hub.control.status import STATES, ConnectorStatus
from schemas.connector import ConnectorDocument

PAGE_SIZE = 50
SORTS = ("name", "state", "provider")
MAX_QUERY_CHARS = 100


@dataclass(frozen=True, slots=True)
class Row:
    """One connector as the listing shows it."""

    tenant: str
    name: str
    provider: str
    kind: str
    state: str
    revision: int
    last_error: str | None
    last_success: str | None = None
    """The status's `lastSuccessAt`: the last event accepted (or poll run that succeeded)."""


@dataclass(frozen=True, slots=True)
class Filters:
    """The listing's query parameters, checked."""

    text: str = ""
    state: str = ""
    tenant: str = ""
    sort: str = "name"
    page: int = 1

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        """From the query string; 400 naming the parameter when one is not acceptable."""
        text = query.get("q", "").strip()
        if len(text) > MAX_QUERY_CHARS:
            raise Refusal(400, "bad_request", f"q is at most {MAX_QUERY_CHARS} characters.", audited=False)
        state = query.get("state", "")
        if state and state not in STATES:
            raise Refusal(400, "bad_request", f"state must be one of {', '.join(STATES)}.", audited=False)
        sort = query.get("sort", "name") or "name"
        if sort not in SORTS:
            raise Refusal(400, "bad_request", f"sort must be one of {', '.join(SORTS)}.", audited=False)
        raw_page = query.get("page", "1") or "1"
        if not raw_page.isdigit() or int(raw_page) < 1:
            raise Refusal(400, "bad_request", "page must be a whole number from 1.", audited=False)
        return cls(text, state, query.get("tenant", "").strip(), sort, int(raw_page))

    def link(self, **changes: str | int) -> str:
        """This listing's query string with some parameters changed (e.g. another page)."""
        values: dict[str, str | int] = {
            "q": self.text,
            "state": self.state,
            "tenant": self.tenant,
            "sort": self.sort,
            "page": self.page,
        }
        values.update(changes)
        return "?" + urlencode({k: v for k, v in values.items() if v != ""})


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of the filtered, sorted rows."""

    rows: list[Row]
    total: int
    page: int
    pages: int


def rows_of(stored: Iterable[StoredSpec], statuses: Mapping[tuple[str, str], ConnectorStatus]) -> list[Row]:
    """The rows of stored connectors; one without a status yet is provisioning (or disabled)."""
    rows = []
    for spec in stored:
        document = spec.document
        if not isinstance(document, ConnectorDocument):
            continue
        status = statuses.get(document.key)
        fallback = "provisioning" if document.spec.enabled else "disabled"
        rows.append(
            Row(
                tenant=document.metadata.tenant,
                name=document.metadata.name,
                provider=document.spec.provider,
                kind=document.spec.type,
                state=status.state if status else fallback,
                revision=spec.revision,
                last_error=status.lastError if status else None,
                last_success=status.lastSuccessAt if status else None,
            )
        )
    return rows


def select(rows: list[Row], filters: Filters) -> Listing:
    """Filter (text in tenant, name or provider; state), sort, and cut out the page asked for (the
    last one when asked for more)."""
    text = filters.text.lower()
    kept = [
        row
        for row in rows
        if (not text or text in row.name or text in row.provider or text in row.tenant)
        and (not filters.state or row.state == filters.state)
    ]
    order = {
        "name": lambda r: (r.tenant, r.name),
        "state": lambda r: (r.state, r.tenant, r.name),
        "provider": lambda r: (r.provider, r.tenant, r.name),
    }[filters.sort]
    kept.sort(key=order)
    pages = max(1, math.ceil(len(kept) / PAGE_SIZE))
    page = min(filters.page, pages)
    return Listing(kept[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], len(kept), page, pages)


async def connectors_page(call: Call) -> web.StreamResponse:
    """GET /console/connectors."""
    filters = Filters.of(call.request.query)
    tenant = call.viewer.tenant
    if filters.tenant:
        call.viewer.require_tenant(filters.tenant)
        if not is_name(filters.tenant):  # `*` or `>` would be a wildcard in the KV lookup
            raise not_found("No such tenant.")
        tenant = filters.tenant
    listing = select(rows_of(*await connectors_with_statuses(call.console.js, tenant)), filters)
    return call.render(
        "connectors.html",
        title="Connectors",
        listing=listing,
        filters=filters,
        states=STATES,
        sorts=SORTS,
        rates=await _rates(call, listing.rows),
    )


async def _rates(call: Call, rows: list[Row]) -> Mapping[tuple[str, str], Rates] | None:
    """The rates of the rows shown (one pipeline), None when they cannot be read (shown as n/a)."""
    if call.console.rates is None:
        return None
    try:
        return await call.console.rates.rates([(row.tenant, row.name) for row in rows])
    except (RedisError, OSError):
        return None
