"""Subject naming for the hub's streams, with untrusted tokens made safe.

Event types come from request bodies and headers. Each token of a type is reduced to NATS-safe
characters and bounded, so no input can produce a wildcard (`*`, `>`), an empty token, a
whitespace or control character, or a subject outside `hub.events.<tenant>.<connector>.`.
The mapping is lossy by design: the envelope carries the exact type; the subject is for routing.
"""

from __future__ import annotations

import hashlib
import re

EVENTS_PREFIX = "hub.events"
INVOCATIONS_PREFIX = "hub.invocations"
DLQ_PREFIX = "hub.dlq"
AUDIT_PREFIX = "hub.audit"
JOURNEY_PREFIX = "hub.journey"
REJECTED_PREFIX = "hub.rejected"
REPLAY_PREFIX = "hub.replay"
HUB_WIDE = "_hub"
"""The audit tenant token of what belongs to no tenant (operator keys, calls naming no tenant);
a tenant name cannot start with `_`, so it never collides with one."""

MAX_TOKEN_CHARS = 64
MAX_TYPE_TOKENS = 8
PLACEHOLDER = "_"

_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize_token(raw: str) -> str:
    """One subject token from untrusted text: `[A-Za-z0-9_-]`, 1 to 64 characters."""
    return _UNSAFE_CHARS.sub(PLACEHOLDER, raw)[:MAX_TOKEN_CHARS] or PLACEHOLDER


def type_tokens(event_type: str) -> list[str]:
    """The sanitized subject tokens of an event type, at most MAX_TYPE_TOKENS of them."""
    parts = event_type.split(".")
    if len(parts) > MAX_TYPE_TOKENS:
        parts = [*parts[: MAX_TYPE_TOKENS - 1], PLACEHOLDER.join(parts[MAX_TYPE_TOKENS - 1 :])]
    return [sanitize_token(part) for part in parts]


def is_name(name: str) -> bool:
    """Whether a text is a valid tenant, connector or route name."""
    return _NAME.fullmatch(name) is not None


def check_name(kind: str, name: str) -> str:
    """A tenant, connector or route name as the spec allows it (`[a-z0-9-]`, 1-63), else ValueError."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{kind} name {name!r} is not [a-z0-9-], 1-63 characters")
    return name


def events_prefix(tenant: str, connector: str) -> str:
    """The subject prefix every event of one connector is published under (ends with a dot)."""
    return f"{EVENTS_PREFIX}.{check_name('tenant', tenant)}.{check_name('connector', connector)}."


def event_subject(tenant: str, connector: str, event_type: str) -> str:
    """`hub.events.<tenant>.<connector>.<type tokens>`."""
    return events_prefix(tenant, connector) + ".".join(type_tokens(event_type))


def invocation_subject(tenant: str, connector: str, route: str) -> str:
    """`hub.invocations.<tenant>.<connector>.<route>`."""
    return ".".join((INVOCATIONS_PREFIX, *_names(tenant, connector, route)))


def dlq_subject(tenant: str, connector: str, route: str) -> str:
    """`hub.dlq.<tenant>.<connector>.<route>`."""
    return ".".join((DLQ_PREFIX, *_names(tenant, connector, route)))


def audit_subject(tenant: str, action: str) -> str:
    """`hub.audit.<tenant>.<action>` (`hub.audit._hub.<action>` for what belongs to no tenant)."""
    owner = tenant if tenant == HUB_WIDE else check_name("tenant", tenant)
    return f"{AUDIT_PREFIX}.{owner}.{sanitize_token(action)}"


def journey_subject(tenant: str, connector: str, event_id: str) -> str:
    """`hub.journey.<tenant>.<connector>.<event token>`: every gate record of one event on one subject.

    The token is the first 32 hex digits of the SHA-256 of the event id, so any id (dots, wildcards,
    200 characters) maps to one safe token, and a lookup by id is a direct get by subject.
    """
    return f"{JOURNEY_PREFIX}.{'.'.join(_names(tenant, connector, 'x')[:2])}.{event_token(event_id)}"


def event_token(event_id: str) -> str:
    """The subject token that stands for an event id in `hub.journey.*` subjects."""
    return hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def rejected_subject(tenant: str, connector: str) -> str:
    """`hub.rejected.<tenant>.<connector>`: one subject per connector, so the stream bounds each one."""
    return ".".join((REJECTED_PREFIX, *_names(tenant, connector, "x")[:2]))


def replay_subject(tenant: str, connector: str, event_type: str) -> str:
    """`hub.replay.<tenant>.<connector>.<type tokens>`: the shadow subject events are replayed to."""
    names = _names(tenant, connector, "x")[:2]
    return ".".join((REPLAY_PREFIX, *names, *type_tokens(event_type)))


def _names(tenant: str, connector: str, route: str) -> tuple[str, str, str]:
    return check_name("tenant", tenant), check_name("connector", connector), check_name("route", route)
