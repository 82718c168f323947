"""Refusals to HTTP answers, in one place: status, machine-readable body, Retry-After.

The body is `{"error": <category>, "reason": <specific cause>, "detail": <sentence>}`; an unknown
connector answers a bare 404 so nothing else about the hub is revealed.
"""

from __future__ import annotations

from aiohttp import web

from adapters.errors import PayloadError, ReplayWindowError, RequestRejected, SignatureError
from hub.errors import BodyTooLarge, ClaimHeld, PublishUnavailable, UnknownConnector, UnsupportedEncoding

STATUS: dict[type[RequestRejected], int] = {
    UnknownConnector: 404,
    BodyTooLarge: 413,
    UnsupportedEncoding: 415,
    SignatureError: 401,
    ReplayWindowError: 401,
    PayloadError: 400,
    ClaimHeld: 409,
    PublishUnavailable: 503,
}


def status_of(error: RequestRejected) -> int:
    """The HTTP status of a refusal (400 for any refusal not listed)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def rejection_response(error: RequestRejected) -> web.Response:
    """The JSON answer to a refusal."""
    if isinstance(error, UnknownConnector):
        return web.json_response({"error": "not_found"}, status=404)
    headers = {}
    if isinstance(error, ClaimHeld | PublishUnavailable):
        headers["Retry-After"] = str(error.retry_after_s)
    body = {"error": error.category, "reason": error.reason, "detail": error.detail}
    return web.json_response(body, status=status_of(error), headers=headers)
