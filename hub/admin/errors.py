"""Admin API errors: JSON with a stable machine-readable `code` and a message for people.

Messages name fields, documents, revisions and scopes; they never carry a submitted value (a
secret sent in the wrong field must not come back in the error about it).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class ApiError(Exception):
    """An answer other than success."""

    def __init__(self, status: int, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def response(self, request_id: str) -> web.Response:
        """The error as a JSON response."""
        body = {"code": self.code, "message": self.message, **self.detail, "requestId": request_id}
        return web.Response(
            body=orjson.dumps(body),
            status=self.status,
            content_type="application/json",
            headers={"X-Request-Id": request_id},
        )


def not_found(what: str = "no such connector") -> ApiError:
    """404: unknown, or belonging to a tenant the key cannot see (the two are indistinguishable)."""
    return ApiError(404, "not_found", what)


def invalid(message: str, problems: list[dict[str, Any]] | None = None) -> ApiError:
    """422: the body is well-formed but not a valid spec or value."""
    return ApiError(422, "invalid_spec", message, problems=problems or [])


def bad_request(message: str) -> ApiError:
    """400: the body cannot be read at all."""
    return ApiError(400, "bad_request", message)


class Denied(ApiError):
    """A refusal of the caller (no key, a tenant out of reach, a missing scope): audited."""
