"""The admin aiohttp application: the endpoint table behind authentication, tenant reach and scopes."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from events.subjects import HUB_WIDE, is_name
from hub.admin.auth import HOST_NOT_LOOPBACK, Principal, addressed_to_loopback, authenticate, request_id
from hub.admin.errors import ApiError, Denied, not_found
from hub.admin.routes import MAX_BODY_BYTES, SECRETS, AdminContext, Call, Endpoint
from hub.admin.table import ENDPOINTS
from hub.control.audit import denial_tenant
from hub.control.plane import Actor
from schemas.secrets import STORE_NAME_PATTERN

log = logging.getLogger(__name__)

ADMIN = web.AppKey("admin", AdminContext)


def build_admin_app(admin: AdminContext) -> web.Application:
    """Every endpoint of the table, each wrapped in the checks; with `--insecure-no-auth`, every route
    (also any added later) answers only requests addressed to a loopback host."""
    middlewares = [_loopback_host_only(admin)] if admin.insecure else []
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[ADMIN] = admin
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, _guarded(endpoint, admin))
    return app


def _loopback_host_only(admin: AdminContext) -> Middleware:
    """Without keys, the admin API must not obey a web page in a developer's browser: one whose name
    the attacker's DNS rebinds to 127.0.0.1 reaches the loopback port, but with its own name as `Host`."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if addressed_to_loopback(request.headers.getall(hdrs.HOST, [])):
            return await handler(request)
        started, rid = time.perf_counter(), request_id(request)
        denial = Denied(403, HOST_NOT_LOOPBACK, "without API keys only Host 127.0.0.1, localhost or [::1] is served")
        await admin.plane.audit.record(
            tenant=HUB_WIDE,
            action="denied",
            target=f"{request.method} {request.path}"[:512],
            outcome=denial.code,
            request_id=rid,
            key_id=None,
            started=started,
            detail={"status": denial.status},
        )
        return denial.response(rid)

    return check


def _guarded(endpoint: Endpoint, admin: AdminContext) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        rid = request_id(request)
        principal: Principal | None = None
        try:
            principal = await authenticate(request, admin.plane.keys, insecure=admin.insecure)
            tenant = request.match_info.get("tenant")
            if tenant is not None:
                principal.require_tenant(tenant)
            if endpoint.scope is not None:
                principal.require_scope(endpoint.scope)
            _require_possible_names(endpoint, request)
            actor = Actor(principal.key_id, rid, started, tenant=principal.tenant)
            response = await endpoint.handler(Call(request, principal, admin, actor))
        except Denied as denial:
            await _audit_denial(admin, request, endpoint, principal, denial, rid, started)
            return denial.response(rid)
        except ApiError as error:
            return error.response(rid)
        except Exception:  # a bug: say so without details, log it with the request id
            log.exception("admin API request failed", extra={"request_id": rid, "operation": endpoint.operation_id})
            return ApiError(500, "internal", "internal error; see the hub's log for this request id").response(rid)
        response.headers["X-Request-Id"] = rid
        return response

    return handle


NAME_SEGMENTS = ("tenant", "name", "route")
"""Path segments that hold a tenant, connector or route name; other segments (an event id, a job id, a
sequence) are checked by their handlers, as their forms differ."""


def _require_possible_names(endpoint: Endpoint, request: web.Request) -> None:
    """The 404 an unknown name gets, for a path segment no tenant, connector or secret can have
    (`*`, `>`, `..`, too long, ...): such a segment must never reach a KV lookup, where it is a
    wildcard or an invalid key. Checked after the key's tenant and scope, as an unknown name is."""
    for segment, value in request.match_info.items():
        if segment == "name" and endpoint.path.startswith(SECRETS):
            if re.fullmatch(STORE_NAME_PATTERN, value) is None:
                raise not_found("no such secret")
        elif segment in NAME_SEGMENTS and not is_name(value):
            raise not_found()


async def _audit_denial(
    admin: AdminContext,
    request: web.Request,
    endpoint: Endpoint,
    principal: Principal | None,
    denial: Denied,
    rid: str,
    started: float,
) -> None:
    await admin.plane.audit.record(
        tenant=denial_tenant(request.match_info.get("tenant"), principal.tenant if principal else None),
        action="denied",
        target=f"{endpoint.method} {request.path}"[:512],
        outcome=denial.code,
        request_id=rid,
        key_id=principal.key_id if principal else None,
        started=started,
        detail={"operation": endpoint.operation_id, "status": denial.status},
    )
