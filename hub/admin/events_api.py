"""The admin API's operations on event history and journeys: `GET /v1/events` and
`GET /v1/connectors/{tenant}/{name}/events/{event}` (the event id percent-encoded), both read-only.

A tenant key reads its own tenant only: another tenant's connector or event answers the same 404 as a
missing one (hub/history/events.py checks it again below the API).
"""

from __future__ import annotations

from aiohttp import web
from nats.aio.client import Client as NATS

from events.directget import HistoryUnavailable
from hub.admin.errors import ApiError, not_found
from hub.admin.routes import OPERATION_READ, Call, Endpoint, json_response
from hub.history.events import (
    EventQuery,
    HistoryError,
    NotFound,
    list_events,
    parse_limit,
    parse_time,
    show_event,
)

ORDERS = {"newest": True, "oldest": False}


def _nats(call: Call) -> NATS:
    if call.admin.nc is None:
        raise ApiError(503, "history_unavailable", "this process has no connection to the bus")
    return call.admin.nc


def bad_parameter(parameter: str, message: str) -> ApiError:
    """400 naming the query parameter (never echoing its value)."""
    return ApiError(400, "bad_request", message, parameter=parameter)


def _query(call: Call) -> EventQuery:
    query = call.request.query
    tenant = query.get("tenant")
    if tenant is not None:
        call.principal.require_tenant(tenant)
    order = query.get("order", "newest")
    if order not in ORDERS:
        raise bad_parameter("order", "order must be newest or oldest")
    try:
        return EventQuery(
            tenant=tenant,
            connector=query.get("connector"),
            subject=query.get("subject"),
            type_glob=query.get("type"),
            since=parse_time("since", query["since"]) if "since" in query else None,
            until=parse_time("until", query["until"]) if "until" in query else None,
            event_id=query.get("id"),
            newest_first=ORDERS[order],
            cursor=query.get("cursor"),
            limit=parse_limit(query.get("limit")),
        )
    except HistoryError as exc:
        raise bad_parameter(exc.parameter, str(exc)) from None


async def list_history(call: Call) -> web.Response:
    """A page of events, newest (or oldest) first, with the cursor of the next."""
    query = _query(call)
    try:
        page = await list_events(_nats(call), call.principal.tenant, query)
    except HistoryError as exc:
        raise bad_parameter(exc.parameter, str(exc)) from None
    except NotFound:
        raise not_found() from None
    except HistoryUnavailable as exc:
        raise ApiError(503, "history_unavailable", str(exc)) from None
    return json_response(page.as_dict())


async def get_event(call: Call) -> web.Response:
    """One event: envelope, headers, provenance, its journey and its dead letters."""
    tenant, name = call.path("tenant"), call.path("name")
    try:
        detail = await show_event(_nats(call), call.principal.tenant, tenant, name, call.path("event"))
    except NotFound:
        raise not_found() from None  # word for word what another tenant's connector gets
    except HistoryUnavailable as exc:
        raise ApiError(503, "history_unavailable", str(exc)) from None
    return json_response({"connector": f"{tenant}/{name}", **detail.as_dict()})


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/events", list_history, OPERATION_READ, "List stored events", "listEvents"),
    Endpoint(
        "GET",
        "/v1/connectors/{tenant}/{name}/events/{event}",
        get_event,
        OPERATION_READ,
        "One event with its journey",
        "getEvent",
    ),
)
"""The history operations; hub/admin/table.py adds them to the API's table."""
