"""Which stored events a replay takes from HUB_EVENTS: one id, a filter or a time range.

The tenant and connector become the subject filter the server applies (`hub.events.<t>.<c>.>`), a
`since` becomes the batched read's `start_time`; only the type and subject globs, the event id and
`until` are checked here, on what the server already filtered. Events stored after the job started
(above the stream's last sequence then) are not taken.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.aio.client import Client as NATS

from events.directget import Stored, direct_get
from events.envelope import headers_to_attributes
from events.streams import EVENTS_STREAM
from events.subjects import EVENTS_PREFIX, is_name
from hub.history.deadletters import READ_BATCH, parse_time

MAX_TEXT = 512


class SelectionError(ValueError):
    """A selection field is wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Selection:
    """Events of a tenant and connector (None: any), whose type and CloudEvents subject match globs,
    one id, stored within [since, until]."""

    tenant: str | None = None
    connector: str | None = None
    type: str | None = None
    subject: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, fields: Mapping[str, Any]) -> Selection:
        """From a JSON object; SelectionError naming the field that is wrong."""
        unknown = set(fields) - {"tenant", "connector", "type", "subject", "eventId", "since", "until"}
        if unknown:
            raise SelectionError(sorted(unknown)[0], f"unknown selection field {sorted(unknown)[0]}")
        for name in ("tenant", "connector"):
            value = fields.get(name)
            if value is not None and (not isinstance(value, str) or not is_name(value)):
                raise SelectionError(name, f"{name} must be a name ([a-z0-9-], 1-63 characters)")
        for name in ("type", "subject", "eventId"):
            value = fields.get(name)
            if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_TEXT):
                raise SelectionError(name, f"{name} must be a text of 1-{MAX_TEXT} characters")
        if fields.get("eventId") is not None and (fields.get("tenant") is None or fields.get("connector") is None):
            raise SelectionError("eventId", "an event id is looked up within one tenant and connector: name both")
        try:
            since, until = parse_time("since", fields.get("since")), parse_time("until", fields.get("until"))
        except ValueError as exc:
            raise SelectionError("since" if "since" in str(exc) else "until", str(exc)) from None
        if since is not None and until is not None and until < since:
            raise SelectionError("until", "until is before since")
        return cls(
            fields.get("tenant"),
            fields.get("connector"),
            fields.get("type"),
            fields.get("subject"),
            fields.get("eventId"),
            since,
            until,
        )

    def to_dict(self) -> dict[str, str]:
        """As the JSON object `parse` reads (a job's parameters)."""
        fields = {
            "tenant": self.tenant,
            "connector": self.connector,
            "type": self.type,
            "subject": self.subject,
            "eventId": self.event_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def stream_filter(self) -> str:
        """The subject filter the server applies."""
        return f"{EVENTS_PREFIX}.{self.tenant or '*'}.{self.connector or '*'}.>"

    def matches(self, message: Stored) -> bool:
        """What the subject filter cannot check."""
        if self.until is not None and message.stored_at > self.until.timestamp():
            return False
        if self.type is None and self.subject is None and self.event_id is None:
            return True
        attributes = headers_to_attributes(message.headers)
        if self.event_id is not None and attributes.get("id") != self.event_id:
            return False
        if self.type is not None and not fnmatch.fnmatchcase(attributes.get("type", ""), self.type):
            return False
        return self.subject is None or fnmatch.fnmatchcase(attributes.get("subject", ""), self.subject)


@dataclass(frozen=True, slots=True)
class Batch:
    """The matching events of one read, and where the next read starts (None: nothing is left)."""

    events: list[Stored]
    next_seq: int | None


async def read_batch(nc: NATS, selection: Selection, start_seq: int | None, end_seq: int, size: int) -> Batch:
    """The matching events of the next `size` stored on the selection's subjects, from `start_seq`
    (None: the first, or the first at `since`), none above `end_seq`."""
    from_time = selection.since.timestamp() if start_seq is None and selection.since is not None else None
    messages = await direct_get(
        nc,
        EVENTS_STREAM,
        seq=None if from_time is not None else start_seq or 1,
        start_time=from_time,
        subject=selection.stream_filter(),
        batch=size,
    )
    within = [m for m in messages if m.sequence <= end_seq]
    past_until = selection.until is not None and any(m.stored_at > selection.until.timestamp() for m in within)
    exhausted = len(messages) < size or len(within) < len(messages) or past_until
    next_seq = None if exhausted or not within else within[-1].sequence + 1
    return Batch([m for m in within if selection.matches(m)], next_seq)


async def count(nc: NATS, selection: Selection, end_seq: int) -> int:
    """How many events match. When the server's filter is the whole selection, its count of what
    follows the first event (which may include events stored since `end_seq`: the replay's end
    corrects it); otherwise every candidate is read."""
    if selection.type is None and selection.subject is None and selection.event_id is None and selection.until is None:
        first = await read_batch(nc, selection, None, end_seq, 1)
        return first.events[0].pending + 1 if first.events else 0
    return sum([1 async for _ in matching(nc, selection, end_seq)])


async def matching(nc: NATS, selection: Selection, end_seq: int) -> AsyncIterator[Stored]:
    """Every matching event up to `end_seq` (a dry run, a job's count)."""
    start: int | None = None
    while True:
        batch = await read_batch(nc, selection, start, end_seq, READ_BATCH)
        for event in batch.events:
            yield event
        if batch.next_seq is None:
            return
        start = batch.next_seq
