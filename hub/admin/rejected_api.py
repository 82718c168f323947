"""The admin API's operations on rejected requests kept for diagnosis (hub/history/rejected.py).

`GET /v1/rejected` lists (a tenant key: its own tenant only), `GET /v1/rejected/{tenant}/{name}/{seq}`
shows one with its headers and body, `POST .../{seq}:retry` retries it with the connector as
deployed now (its current secrets, opened with this hub's master key). Another tenant's kept
requests answer as missing ones do (404 `not_found`); every retry is audited by the retry itself.
"""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web
from nats.aio.client import Client as NATS

from events.directget import HistoryUnavailable
from events.subjects import is_name
from hub.admin.errors import ApiError, bad_request, not_found
from hub.admin.routes import OPERATION_INVOKE, OPERATION_READ, Call, Endpoint, json_response
from hub.control import served_connector
from hub.errors import ClaimHeld, PublishUnavailable
from hub.history.rejected import (
    MAX_LIMIT,
    KeptRequest,
    Query,
    RetryAudit,
    list_kept,
    retry,
    retry_path,
    show,
)
from hub.ingest.connectors import Connector
from hub.jobs import retry_rejected as retry_rejected_job

_SEQ = re.compile(r"[1-9][0-9]{0,18}")
NOT_KEPT = "no such rejected request"


def _nats(call: Call) -> NATS:
    if call.admin.nc is None:
        raise ApiError(503, "history_unavailable", "this process has no connection to the bus")
    return call.admin.nc


def _time(call: Call, name: str) -> float | None:
    value = call.request.query.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(f"{name} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise bad_request(f"{name} must name its time zone (Z or an offset)")
    return moment.timestamp()


def _number(call: Call, name: str, default: int | None, high: int) -> int | None:
    value = call.request.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= high:
        raise bad_request(f"{name} must be a whole number from 1 to {high}")
    return int(value)


def _query(call: Call) -> Query:
    """The listing's filters; a tenant key reads its own tenant, an operator any (or every) tenant."""
    params = call.request.query
    tenant = params.get("tenant")
    if tenant is not None:
        call.principal.require_tenant(tenant)
        if not is_name(tenant):
            raise not_found()
    else:
        tenant = call.principal.tenant
    connector = params.get("connector")
    if connector is not None:
        if tenant is None:
            raise bad_request("connector needs tenant: ?tenant=<tenant>&connector=<name>")
        if not is_name(connector):
            raise not_found()
    return Query(
        tenant=tenant,
        connector=connector,
        reason=params.get("reason"),
        since=_time(call, "since"),
        until=_time(call, "until"),
        cursor=_number(call, "cursor", None, 2**63 - 1),
        limit=_number(call, "limit", 50, MAX_LIMIT) or 50,
    )


async def list_rejected(call: Call) -> web.Response:
    """Kept requests, newest first, with the cursor of the next page."""
    try:
        page = await list_kept(_nats(call), _query(call))
    except HistoryUnavailable as exc:
        raise ApiError(503, "history_unavailable", str(exc)) from None
    return json_response({"rejected": [k.summary() for k in page.items], "nextCursor": page.next_cursor})


async def _kept(call: Call) -> KeptRequest:
    seq = call.path("seq")
    if not _SEQ.fullmatch(seq):
        raise not_found(NOT_KEPT)
    try:
        kept = await show(_nats(call), call.path("tenant"), call.path("name"), int(seq))
    except HistoryUnavailable as exc:
        raise ApiError(503, "history_unavailable", str(exc)) from None
    if kept is None:
        raise not_found(NOT_KEPT)
    return kept


async def get_rejected(call: Call) -> web.Response:
    """One kept request: the refusal, headers (credentials withheld) and body."""
    return json_response((await _kept(call)).to_dict())


async def current_connector(call: Call, tenant: str, name: str) -> Connector:
    """The connector as this hub would serve it now (hub/control/served_connector.py); 409
    `not_served` when it is deleted, disabled, not a webhook, or cannot be built."""
    try:
        return await served_connector.current_connector(call.plane, _nats(call), call.admin.settings, tenant, name)
    except served_connector.NotServed as exc:
        raise ApiError(409, "not_served", exc.message, **({"problems": exc.problems} if exc.problems else {})) from None
    except served_connector.SecretStoreUnavailable:
        raise ApiError(503, "secret_store_unavailable", "the master key cannot be read") from None


async def retry_rejected(call: Call) -> web.Response:
    """Retry a kept request: `recovered`, `still_refused` or `duplicate` (200 each)."""
    kept = await _kept(call)
    if call.admin.redis is None:
        raise ApiError(503, "history_unavailable", "this process has no connection to the dedupe store")
    connector = await current_connector(call, call.path("tenant"), call.path("name"))
    audit = RetryAudit(call.plane.audit, call.actor.key_id, call.actor.request_id, call.actor.started)
    try:
        async with retry_path(_nats(call), call.admin.redis, call.admin.settings) as path:
            result = await retry(path, connector, kept, audit)
    except ClaimHeld as exc:
        raise ApiError(409, "in_flight", "a delivery of the same event is in flight: retry later") from exc
    except PublishUnavailable as exc:
        raise ApiError(503, "unavailable", "the bus or a key server is unavailable: retry later") from exc
    return json_response(result.to_dict())


KEPT = "/v1/rejected/{tenant}/{name}/{seq}"


async def retry_all_rejected(call: Call) -> web.Response:
    """Retry every kept request the query selects (as `GET /v1/rejected` takes it) as a job."""
    query = _query(call)
    store = await call.admin.jobs.get(_nats(call).jetstream(), replicas=call.admin.settings.stream_replicas)
    where = {"connector": query.connector, "reason": query.reason, "since": query.since, "until": query.until}
    job = await retry_rejected_job.start(store, query.tenant, where, created_by=call.actor.key_id)
    await call.plane.audit.record_by(
        call.actor,
        query.tenant,
        "rejected_retry_start",
        f"job/{job.id}",
        "accepted",
        {k: v for k, v in where.items() if v is not None},
    )
    return json_response(job.public(), 202)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/rejected:retry",
        retry_all_rejected,
        OPERATION_INVOKE,
        "Retry every kept request a filter selects, as a job",
        "retryAllRejected",
    ),
    Endpoint("GET", "/v1/rejected", list_rejected, OPERATION_READ, "List refused requests kept", "listRejected"),
    Endpoint("GET", KEPT, get_rejected, OPERATION_READ, "A refused request as kept", "getRejected"),
    Endpoint("POST", KEPT + ":retry", retry_rejected, OPERATION_INVOKE, "Retry a kept request", "retryRejected"),
)
