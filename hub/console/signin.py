"""Signing in with an API key (a form) and out. The key itself is checked once and never kept: the
session cookie holds its id, and every later request looks the key up again by that id."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from events.subjects import HUB_WIDE
from hub.console.call import (
    CONSOLE,
    SIGN_IN,
    clear_session_cookie,
    error_page,
    redirect,
    render,
    set_session_cookie,
    signed_in,
)
from hub.console.refusal import Refusal
from hub.console.security import check_csrf, check_origin
from hub.console.session import COOKIE, Session

HOME = "/console/connectors"


async def sign_in_form(request: web.Request) -> web.StreamResponse:
    """The form; a browser that is signed in goes on to the connectors."""
    console = request.app[CONSOLE]
    if await signed_in(request, console) is not None:
        return redirect(HOME)
    ended = request.query.get("ended") == "1"
    response = render(console, "signin.html", viewer=None, path=request.path, title="Sign in", ended=ended, error=None)
    if COOKIE in request.cookies:
        clear_session_cookie(response)
    return response


async def sign_in(request: web.Request) -> web.StreamResponse:
    """Check the key; on success a new session (a new CSRF secret) and the connectors page."""
    console = request.app[CONSOLE]
    started, request_id = time.perf_counter(), uuid.uuid4().hex
    try:
        check_origin(request)
    except Refusal as cross_origin:
        return _sign_in_again(request, cross_origin, 403)
    form = await request.post()
    token = form.get("key")
    key = await console.plane.keys.authenticate(token.strip()) if isinstance(token, str) and token.strip() else None
    if key is None:
        await console.plane.audit.record(
            tenant=HUB_WIDE,
            action="denied",
            target=f"POST {request.path}",
            outcome="invalid_key",
            request_id=request_id,
            key_id=None,
            started=started,
            detail={"operation": "console_sign_in", "status": 401},
        )
        unknown = Refusal(401, "invalid_key", "The API key is unknown, revoked or malformed.")
        return _sign_in_again(request, unknown, 401)
    await console.plane.audit.record(
        tenant=key.tenant or HUB_WIDE,
        action="console_sign_in",
        target=key.id,
        outcome="signed_in",
        request_id=request_id,
        key_id=key.id,
        started=started,
    )
    response = redirect(HOME)
    set_session_cookie(response, request, console, Session.new(key.id))
    return response


async def sign_out(request: web.Request) -> web.StreamResponse:
    """Clear the cookie (a form with the session's CSRF token, so no other site can sign one out)."""
    console = request.app[CONSOLE]
    viewer = await signed_in(request, console)
    if viewer is not None:
        try:
            check_origin(request)
            check_csrf(await request.post(), viewer.session)
        except Refusal as refusal:
            return error_page(console, request, viewer, refusal)
    response = redirect(SIGN_IN)
    clear_session_cookie(response)
    return response


def _sign_in_again(request: web.Request, refusal: Refusal, status: int) -> web.Response:
    return render(
        request.app[CONSOLE],
        "signin.html",
        status,
        viewer=None,
        path=SIGN_IN,
        title="Sign in",
        ended=False,
        error=refusal,
    )
