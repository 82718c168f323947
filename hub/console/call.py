"""One console request: the session's key looked up again, the form's CSRF token, the tenant in
reach, the page's scope, the names in the path, in the admin API's order; then the page, rendered.

Refusals become the error page (role="alert") and, when they refuse the caller, an audit record
exactly as the admin API writes for its denials (action `denied`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from events.subjects import is_name
from hub.console.context import NAV, ConsoleContext
from hub.console.refusal import Refusal, not_found
from hub.console.security import CSRF_FIELD, check_csrf, check_origin
from hub.console.session import COOKIE, Session
from hub.console.viewer import Viewer
from hub.control.audit import denial_tenant
from hub.control.plane import Actor

log = logging.getLogger(__name__)

CONSOLE = web.AppKey("console", ConsoleContext)
SIGN_IN = "/console/sign-in"
FormData = MultiDictProxy[str | bytes | bytearray | web.FileField]


@dataclass(frozen=True, slots=True)
class Call:
    """One signed-in request."""

    request: web.Request
    console: ConsoleContext
    viewer: Viewer
    actor: Actor
    form: FormData | None

    def path(self, name: str) -> str:
        """A path segment."""
        return self.request.match_info[name]

    def field(self, name: str) -> str:
        """A text field of the posted form ('' when absent or a file)."""
        value = self.form.get(name) if self.form is not None else None
        return value if isinstance(value, str) else ""

    def render(self, template: str, http_status: int = 200, **values: Any) -> web.Response:
        """A page, with the navigation this key may use."""
        return render(self.console, template, http_status, viewer=self.viewer, path=self.request.path, **values)


Page = Callable[[Call], Awaitable[web.StreamResponse]]


def render(
    console: ConsoleContext, template: str, http_status: int = 200, *, viewer: Viewer | None, path: str, **values: Any
) -> web.Response:
    """Render a template into an HTML answer."""
    nav = [
        item
        for item in NAV
        if viewer is not None
        and (item.scope is None or viewer.has(item.scope))
        and (viewer.is_operator or not item.operators_only)
    ]
    body = console.templates.get_template(template).render(
        viewer=viewer,
        csrf=viewer.session.csrf if viewer else "",
        csrf_field=CSRF_FIELD,
        nav=nav,
        path=path,
        **values,
    )
    return web.Response(text=body, status=http_status, content_type="text/html")


def redirect(location: str) -> web.Response:
    """303 See Other: after a form, the browser GETs the page (a reload does not post again)."""
    return web.Response(status=303, headers={"Location": location})


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, console: ConsoleContext, session: Session
) -> None:
    """Sign the session anew (the idle clock restarts); HttpOnly, SameSite=Strict, Secure over TLS."""
    response.set_cookie(
        COOKIE,
        console.codec.dumps(session),
        path="/console",
        max_age=console.codec.lifetime_s,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/console")


async def signed_in(request: web.Request, console: ConsoleContext) -> Viewer | None:
    """The request's viewer: a valid session whose key still exists and is not revoked."""
    value = request.cookies.get(COOKIE)
    session = console.codec.loads(value) if value else None
    if session is None:
        return None
    key = await console.plane.keys.get(session.key_id)
    if key is None or key.revoked_at is not None:
        return None
    return Viewer(key, session)


def page(
    handler: Page, scope: str | None, *, form: bool = False
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler for a page (GET) or a form (POST, `form=True`) that needs `scope`."""

    async def handle(request: web.Request) -> web.StreamResponse:
        console = request.app[CONSOLE]
        started, request_id = time.perf_counter(), uuid.uuid4().hex
        viewer: Viewer | None = None
        try:
            viewer = await signed_in(request, console)
            if viewer is None:
                if not form:
                    return redirect(f"{SIGN_IN}?ended=1" if COOKIE in request.cookies else SIGN_IN)
                raise Refusal(401, "session_ended", "Your session has ended: sign in again.")
            posted = None
            if form:
                check_origin(request)
                posted = await request.post()
                check_csrf(posted, viewer.session)
            tenant = request.match_info.get("tenant")
            if tenant is not None:
                viewer.require_tenant(tenant)
            if scope is not None:
                viewer.require_scope(scope)
            if any(not is_name(request.match_info[s]) for s in ("tenant", "name") if s in request.match_info):
                raise not_found()
            actor = Actor(viewer.key_id, request_id, started, tenant=viewer.tenant)
            response = await handler(Call(request, console, viewer, actor, posted))
        except Refusal as refusal:
            if refusal.audited:
                await _audit_denial(console, request, viewer, refusal, request_id, started)
            response = error_page(console, request, viewer, refusal)
        except Exception:
            log.exception("console request failed", extra={"request_id": request_id, "path": request.path})
            failure = Refusal(500, "internal", f"Internal error; the hub's log has request id {request_id}.")
            response = error_page(console, request, viewer, failure)
        if viewer is not None:
            set_session_cookie(response, request, console, viewer.session)
        else:
            clear_session_cookie(response)
        response.headers["X-Request-Id"] = request_id
        return response

    return handle


def error_page(console: ConsoleContext, request: web.Request, viewer: Viewer | None, refusal: Refusal) -> web.Response:
    """The refusal as a page: its message in a role="alert" region, its code machine-readable."""
    titles: Mapping[int, str] = {401: "Signed out", 403: "Refused", 404: "Not found", 409: "Conflict"}
    return render(
        console,
        "error.html",
        refusal.status,
        viewer=viewer,
        path=request.path,
        title=titles.get(refusal.status, "Error"),
        refusal=refusal,
    )


async def _audit_denial(
    console: ConsoleContext,
    request: web.Request,
    viewer: Viewer | None,
    refusal: Refusal,
    request_id: str,
    started: float,
) -> None:
    await console.plane.audit.record(
        tenant=denial_tenant(request.match_info.get("tenant"), viewer.tenant if viewer else None),
        action="denied",
        target=f"{request.method} {request.path}"[:512],
        outcome=refusal.code,
        request_id=request_id,
        key_id=viewer.key_id if viewer else None,
        started=started,
        detail={"operation": "console", "status": refusal.status},
    )
