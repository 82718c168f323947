"""Redaction rules of a Connector (`spec.redact`): which fields of an event's data are masked, hashed
or dropped before the envelope is published (docs/design.md, "Redaction").

Paths are JSON Pointers (RFC 6901) into the event's `data`, plus one extension: a segment that is
exactly `*` matches every member of an object and every element of an array. Nothing else is
special: no slices, no filters, no recursive descent. A pointer walks the document once, visiting
each node at most once per rule, so a tenant's rule costs at most the size of the (already capped)
payload, whatever it says; JMESPath was not chosen because its cost is not bounded by the document
(`schemas.bounded_jmespath` has to meter it) and its projections make "what was redacted" hard to
state. A literal member named `*` cannot be addressed (nor any member under it); `~0` and `~1` are
the RFC's escapes of `~` and `/`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

WILDCARD = "*"
MAX_RULES = 64
MAX_SEGMENTS = 32
HASH_KEY_SECRET = "redaction-key"  # noqa: S105 - the name of a store secret, not a value
"""The tenant's store secret whose value keys the `hash` action (HMAC-SHA256): a fixed name, so a spec
can never point the hash at another secret, and one key per tenant, so equal values join across that
tenant's connectors and never across tenants."""
TRUNCATE_OVER_MIN = 1024
TRUNCATE_OVER_MAX = 64 * 1024 * 1024


def pointer_segments(pointer: str) -> tuple[str, ...]:
    """The unescaped segments of a JSON Pointer (`/a~1b/*` -> `("a/b", "*")`), or ValueError."""
    if not pointer.startswith("/"):
        raise ValueError("a path is a JSON Pointer starting with `/` (the whole payload cannot be redacted)")
    raw = pointer[1:].split("/")
    if len(raw) > MAX_SEGMENTS:
        raise ValueError(f"a path has at most {MAX_SEGMENTS} segments")
    segments = []
    for segment in raw:
        if "~" in segment.replace("~0", "").replace("~1", ""):
            raise ValueError(f"`~` in segment {segment!r} must be escaped as `~0` (and `/` as `~1`)")
        segments.append(segment.replace("~1", "/").replace("~0", "~"))
    return tuple(segments)


def _check_pointer(pointer: str) -> str:
    pointer_segments(pointer)
    return pointer


Pointer = Annotated[str, Field(max_length=512), AfterValidator(_check_pointer)]


class RedactionRule(BaseModel):
    """One field (or, with `*` segments, a set of fields) of the event's data and what to do to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Pointer = Field(
        description="JSON Pointer into the event's data; a segment `*` matches every member or element"
    )
    action: Literal["mask", "hash", "drop"] = Field(
        description='mask: replaced by "[redacted]"; hash: HMAC-SHA256 hex with the tenant\'s store secret '
        f"`{HASH_KEY_SECRET}` (equal values give equal hashes); drop: removed"
    )
    allowHubFields: bool = Field(
        default=False,
        description="Allow a path the hub derives the event's id, type or time from (they are always computed "
        "from the original payload; without this flag such a rule is refused)",
    )


RedactionRules = Annotated[
    list[RedactionRule],
    Field(max_length=MAX_RULES, description="Applied in order to every event's data before it is published"),
]
TruncateOver = Annotated[
    int | None,
    Field(
        ge=TRUNCATE_OVER_MIN,
        le=TRUNCATE_OVER_MAX,
        description="Bytes: event data larger than this (after redaction) has its longest strings cut, or is "
        "replaced by null, so it fits; the envelope says hubtruncated and huboriginalsize (unset: never cut)",
    ),
]
