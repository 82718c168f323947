"""The console's browser-facing defences: response headers, and the checks every state-changing
form passes (same origin, CSRF token bound to the session)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, MutableMapping

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from hub.console.refusal import Refusal
from hub.console.session import Session

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
CSRF_FIELD = "csrf"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every console answer (pages, errors, redirects, static files) carries the headers; pages are
    never cached (they hold tenant data, and a key's token is shown once on one)."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own 404/405 for unknown console paths
        _secure(exc.headers)
        raise
    _secure(response.headers)
    return response


def _secure(headers: MutableMapping[str, str]) -> None:
    headers.update(SECURITY_HEADERS)
    headers.setdefault(hdrs.CACHE_CONTROL, "no-store")


def check_origin(request: web.Request) -> None:
    """A POST must come from the console's own pages. Browsers say where a request comes from in
    `Sec-Fetch-Site`, and in `Origin` (which is `null` under this console's no-referrer policy, so
    only another site's origin there is refused). SameSite=Strict keeps the cookie off other sites'
    forms already; this also covers the sign-in form, which has no session (login CSRF)."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get(hdrs.ORIGIN)
    if (site is not None and site not in ("same-origin", "none")) or (
        origin not in (None, "null", f"{request.scheme}://{request.host}")
    ):
        raise Refusal(403, "cross_origin", "This form was sent from another site and was refused.")


def check_csrf(form: Mapping[str, object], session: Session) -> None:
    """The form's CSRF token must be the session's (constant-time comparison)."""
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise Refusal(403, "csrf_failed", "The form's security token is missing or wrong: reload the page and retry.")
