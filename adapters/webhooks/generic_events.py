"""Where the generic schemes (hmac, basic, token, url-token) find a delivery's id and type.

Senders without a dedicated adapter say it through options: the id (the dedupe key) in a header
or at a dotted path of the JSON body, else the sha256 of the body; the type likewise, under a
configurable prefix.
"""

from __future__ import annotations

import uuid
from typing import Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.base import InboundRequest, NormalizedEvent, TestRequest
from adapters.errors import PayloadError
from adapters.signing import body_sha256

HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"
JSON_PATH = r"^[^.]+(\.[^.]+){0,15}$"
TYPE_PREFIX = r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3}$"


class EventFields(BaseModel):
    """Options naming where a delivery's id and type are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idHeader: str | None = Field(None, pattern=HEADER_NAME, description="Header with the delivery id (the dedupe key).")
    idPath: str | None = Field(None, pattern=JSON_PATH, description="Dotted path of the delivery id in the JSON body.")
    typeHeader: str | None = Field(None, pattern=HEADER_NAME, description="Header with the event type.")
    typePath: str | None = Field(None, pattern=JSON_PATH, description="Dotted path of the event type in the JSON body.")
    typePrefix: str = Field(
        "event", pattern=TYPE_PREFIX, description="Event type prefix: type = <typePrefix>.<type value or 'event'>."
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> Self:
        if self.idHeader is not None and self.idPath is not None:
            raise ValueError("idHeader, idPath: set at most one of them")
        if self.typeHeader is not None and self.typePath is not None:
            raise ValueError("typeHeader, typePath: set at most one of them")
        return self


def generic_events(request: InboundRequest, fields: EventFields) -> list[NormalizedEvent]:
    """One event: id and type from the configured header or body path; the body embedded as is."""
    body = request.json_object()
    event_type = _value(request, body, fields.typeHeader, fields.typePath) or "event"
    return [
        NormalizedEvent(
            id=_id(request, body, fields), type=f"{fields.typePrefix}.{event_type}", data=orjson.Fragment(request.body)
        )
    ]


def generic_sample(fields: EventFields, now: float) -> TestRequest:
    """A small `sample.created` event with the id and type where the options look for them."""
    msg_id, event_type = str(uuid.uuid4()), "sample.created"
    body: dict[str, Any] = {"occurredAt": int(now), "data": {"id": "obj_1", "name": "sample", "amount": 42}}
    headers = {"Content-Type": "application/json"}
    for header, path, value in (
        (fields.idHeader, fields.idPath, msg_id),
        (fields.typeHeader, fields.typePath, event_type),
    ):
        if header:
            headers[header] = value
        elif path:
            _set_path(body, path, value)
    return TestRequest(headers=headers, body=orjson.dumps(body))


def _id(request: InboundRequest, body: dict[str, Any], fields: EventFields) -> str:
    if fields.idHeader is None and fields.idPath is None:
        return body_sha256(request.body)
    value = _value(request, body, fields.idHeader, fields.idPath)
    if value is None:
        raise PayloadError("invalid_event", "the delivery has no id where idHeader/idPath points")
    return value


def _value(request: InboundRequest, body: dict[str, Any], header: str | None, path: str | None) -> str | None:
    """A non-empty string (or integer, as text) from a header or a body path, else None."""
    value: Any = request.header(header) if header else _get_path(body, path) if path else None
    if type(value) is int:
        value = str(value)
    return value if isinstance(value, str) and value else None


def _get_path(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _set_path(body: dict[str, Any], path: str, value: str) -> None:
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(body.get(key), dict):
            body[key] = {}
        body = body[key]
    body[last] = value
