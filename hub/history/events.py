"""Event history: list a tenant's, a connector's or a subject pattern's events in HUB_EVENTS, and show
one event with its journey. The admin API (`GET /v1/events`, `GET .../events/{event}`) and the CLI
(`connector-hub events`) both call this module.

Reading never walks the stream client-side. The subject filter (tenant, connector, a pattern, and
the literal leading tokens of a type glob) is applied by the server in batched direct gets
(events/directget.py); a time range becomes sequence bounds (a direct get by `start_time`).

- Oldest first: one batched get from the lower bound (the cursor, else `since`), `limit` at a time.
- Newest first: the upper bound is the last sequence of the filter (a `last_by_subj` get) or the
  cursor. Below it, windows of sequences growing geometrically (`limit`, then x4) are probed with a
  one-message get: its `Nats-Num-Pending` gives how many matching messages the window holds. When a
  window holds enough, or reaches the lower bound, exactly those messages are fetched in one batch
  and taken newest first. A sparse filter (one connector among a hundred) costs a few probes, never
  the messages of other subjects.

What the server cannot filter (the type glob beyond its literal tokens, an event id without its
connector) is filtered here, within a budget of messages read per page: a page may come back
short with a cursor, and following the cursors visits every event exactly once.

Every call takes the caller's tenant (None: the operator). A tenant's filter always lies under
`hub.events.<its tenant>.`; asking for another tenant's connector or event answers as if it did
not exist.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from nats.aio.client import Client as NATS

from events.directget import Stored, direct_get, one
from events.envelope import headers_to_attributes
from events.journey import DEAD_LETTERED, ROUTED, JourneyRecord
from events.streams import EVENTS_STREAM, JOURNEYS_STREAM
from events.subjects import EVENTS_PREFIX, MAX_TYPE_TOKENS, is_name, journey_subject, sanitize_token
from schemas.durations import parse_duration

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
SCAN_BUDGET = 5_000
"""At most this many messages are read for one page when a filter is applied here, not by the server."""
FIRST_WINDOW_MIN = 32
WINDOW_GROWTH = 4
FETCH_SLACK = 4
"""A window holding up to this many times what is still needed is fetched whole; a larger one is narrowed."""
MAX_JOURNEY_RECORDS = 1_000
FALLBACK_SEARCH = 1_000
"""How many of a connector's newest events `show` searches when the gate has not routed the event."""
MAX_ID_CHARS = 200
_GLOB = frozenset("*?[")


class HistoryError(ValueError):
    """A parameter is wrong: `parameter` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class NotFound(LookupError):
    """Unknown, or not the caller's: the two answer alike."""


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What to list; `tenant`, `connector` and `subject` choose the subject filter."""

    tenant: str | None = None
    connector: str | None = None
    subject: str | None = None
    type_glob: str | None = None
    since: float | None = None
    until: float | None = None
    event_id: str | None = None
    newest_first: bool = True
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class EventItem:
    """One event of a listing."""

    sequence: int
    id: str
    type: str
    time: str
    received_at: str
    subject: str
    tenant: str
    connector: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        """The item as the API shows it."""
        return {
            "sequence": self.sequence,
            "id": self.id,
            "type": self.type,
            "time": self.time,
            "receivedAt": self.received_at,
            "subject": self.subject,
            "tenant": self.tenant,
            "connector": self.connector,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of events and the cursor of the next (None: nothing more)."""

    items: list[EventItem]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        """The page as the API shows it."""
        return {"events": [item.as_dict() for item in self.items], "nextCursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class EventDetail:
    """One event: the envelope, its headers, where it is stored, its provenance and its journey."""

    sequence: int
    subject: str
    stored_at: str
    envelope: Any
    headers: dict[str, str]
    journey: list[JourneyRecord]
    journey_note: str | None = None
    dead_letters: list[JourneyRecord] = field(default_factory=list)

    @property
    def provenance(self) -> dict[str, Any]:
        """The `hub*` attributes: what the edge established once for the event."""
        if not isinstance(self.envelope, dict):
            return {}
        return {k: v for k, v in self.envelope.items() if k.startswith("hub")}

    def as_dict(self) -> dict[str, Any]:
        """The event as the API shows it."""
        return {
            "sequence": self.sequence,
            "subject": self.subject,
            "storedAt": self.stored_at,
            "envelope": self.envelope,
            "headers": self.headers,
            "provenance": self.provenance,
            "journey": [record.as_dict() for record in self.journey],
            "journeyNote": self.journey_note,
            "deadLetters": [record.as_dict() for record in self.dead_letters],
        }


# --- parameters ----------------------------------------------------------------------------------


def parse_time(parameter: str, text: str, now: float | None = None) -> float:
    """RFC 3339 (`2026-01-02T03:04:05Z`), or a duration back from now (`15m`, `2h`, `7d`)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        pass
    else:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    try:
        ago = parse_duration(text).total_seconds()
    except ValueError:
        raise HistoryError(parameter, f"{parameter} must be an RFC 3339 time or a duration such as 15m") from None
    return (time.time() if now is None else now) - ago


def parse_limit(text: str | int | None) -> int:
    """1 to MAX_LIMIT, default DEFAULT_LIMIT."""
    if text is None:
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise HistoryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise HistoryError("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return limit


def _check_query(query: EventQuery) -> None:
    if query.since is not None and query.until is not None and query.since > query.until:
        raise HistoryError("since", "since must not be after until")
    if query.type_glob is not None and not 1 <= len(query.type_glob) <= 256:
        raise HistoryError("type", "type must be a glob of 1 to 256 characters")
    if query.event_id is not None and not 1 <= len(query.event_id) <= MAX_ID_CHARS:
        raise HistoryError("id", f"id must be 1 to {MAX_ID_CHARS} characters")


def _encode_cursor(newest_first: bool, sequence: int) -> str:
    raw = orjson.dumps({"o": "n" if newest_first else "o", "s": sequence})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, newest_first: bool) -> int:
    """The sequence a cursor continues from; the cursor must come from a listing of the same order."""
    try:
        raw = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        order, sequence = raw["o"], raw["s"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise HistoryError("cursor", "cursor is not one this API returned") from None
    if order != ("n" if newest_first else "o") or not isinstance(sequence, int) or sequence < 0:
        raise HistoryError("cursor", "cursor is not one this API returned for this order")
    return sequence


# --- the subject filter --------------------------------------------------------------------------


def subject_filter(query: EventQuery, caller: str | None) -> str:
    """The subject filter of the query, within what the caller may read; NotFound for another
    tenant's tenant or connector, HistoryError for a malformed one."""
    tenant = query.tenant if query.tenant is not None else caller
    if tenant is not None and caller is not None and tenant != caller:
        raise NotFound
    if query.subject is not None:
        if query.connector is not None:
            raise HistoryError("subject", "give either subject or connector, not both")
        return _subject_pattern(query.subject, tenant)
    if tenant is None:
        if query.connector is not None:
            raise HistoryError("tenant", "connector needs its tenant")
        return f"{EVENTS_PREFIX}.>"
    if not is_name(tenant):
        raise NotFound
    if query.connector is None:
        return f"{EVENTS_PREFIX}.{tenant}.>"
    if not is_name(query.connector):
        raise NotFound
    return f"{EVENTS_PREFIX}.{tenant}.{query.connector}." + _type_tokens_filter(query.type_glob)


def _subject_pattern(pattern: str, tenant: str | None) -> str:
    tokens = pattern.split(".")
    prefix = EVENTS_PREFIX.split(".")
    valid = all(tokens) and all(" " not in t and (t in ("*", ">") or ("*" not in t and ">" not in t)) for t in tokens)
    if not valid or ">" in tokens[:-1] or len(pattern) > 512:
        raise HistoryError("subject", "subject must be a NATS subject pattern (`*` a token, a final `>` the rest)")
    if tokens[:2] != prefix or len(tokens) < 3:
        raise HistoryError("subject", f"subject must start with {EVENTS_PREFIX}.")
    if tenant is not None and tokens[2] != tenant:
        raise HistoryError("subject", f"subject must start with {EVENTS_PREFIX}.<your tenant>.")
    return pattern


def _type_tokens_filter(type_glob: str | None) -> str:
    """The literal leading tokens of a type glob as subject tokens, then `>` (all tokens without a glob)."""
    if type_glob is None:
        return ">"
    literal: list[str] = []
    for token in type_glob.split(".")[:-1][: MAX_TYPE_TOKENS - 1]:
        if _GLOB & set(token) or sanitize_token(token) != token:
            break
        literal.append(token)
    return ".".join([*literal, ">"])


# --- listing -------------------------------------------------------------------------------------


Matcher = Callable[[EventItem], bool]


def _matcher(query: EventQuery) -> Matcher | None:
    """What the server cannot filter: the type glob and the id (None: nothing)."""
    checks: list[Matcher] = []
    if query.type_glob is not None:
        glob = query.type_glob
        checks.append(lambda item: fnmatch.fnmatchcase(item.type, glob))
    if query.event_id is not None:
        wanted = query.event_id
        checks.append(lambda item: item.id == wanted)
    if not checks:
        return None
    return lambda item: all(check(item) for check in checks)


def item_of(stored: Stored) -> EventItem:
    """A listing item from a stored event's `ce-*` headers."""
    attributes = headers_to_attributes(stored.headers)
    return EventItem(
        sequence=stored.sequence,
        id=attributes.get("id", ""),
        type=attributes.get("type", ""),
        time=attributes.get("time", ""),
        received_at=attributes.get("hubreceivedat", ""),
        subject=stored.subject,
        tenant=attributes.get("hubtenant", ""),
        connector=attributes.get("hubconnector", ""),
        size=len(stored.data),
    )


async def _first_at_or_after(nc: NATS, moment: float) -> int | None:
    """The sequence of the first event stored at or after `moment`, or None."""
    got = await direct_get(nc, EVENTS_STREAM, start_time=moment, batch=1)
    return got[0].sequence if got else None


async def list_events(nc: NATS, caller: str | None, query: EventQuery) -> EventPage:
    """One page of events; see the module docstring for how it reads the stream."""
    _check_query(query)
    subject = subject_filter(query, caller)
    matches = _matcher(query)
    tenant = query.tenant if query.tenant is not None else caller
    if query.event_id is not None and query.connector is not None and tenant is not None and not query.cursor:
        indexed = await _indexed(nc, tenant, query.connector, query.event_id)
        if indexed is not None:  # one event: its journey's `routed` record says where it is
            item = item_of(indexed)
            within = (query.since is None or indexed.stored_at >= query.since) and (
                query.until is None or indexed.stored_at < query.until
            )
            return EventPage([item] if within and (matches is None or matches(item)) else [], None)
    if query.newest_first:
        return await _newest_first(nc, subject, query, matches)
    return await _oldest_first(nc, subject, query, matches)


async def _oldest_first(nc: NATS, subject: str, query: EventQuery, matches: Matcher | None) -> EventPage:
    start = _decode_cursor(query.cursor, False) if query.cursor else 1
    if query.since is not None:
        since_seq = await _first_at_or_after(nc, query.since)
        if since_seq is None:
            return EventPage([], None)
        start = max(start, since_seq)
    upper = None
    if query.until is not None:
        after_until = await _first_at_or_after(nc, query.until)
        upper = after_until - 1 if after_until is not None else None
    items: list[EventItem] = []
    read = 0
    while len(items) < query.limit and read < SCAN_BUDGET:
        want = query.limit - len(items) if matches is None else min(MAX_LIMIT, SCAN_BUDGET - read)
        batch = await direct_get(nc, EVENTS_STREAM, seq=start, subject=subject, batch=want)
        read += len(batch)
        for stored in batch:
            if upper is not None and stored.sequence > upper:
                return EventPage(items, None)
            item = item_of(stored)
            start = stored.sequence + 1
            if matches is None or matches(item):
                items.append(item)
                if len(items) == query.limit:
                    more = stored.pending > 0 and (upper is None or stored.sequence < upper)
                    return EventPage(items, _encode_cursor(False, start) if more else None)
        if not batch or batch[-1].pending == 0:
            return EventPage(items, None)
    return EventPage(items, _encode_cursor(False, start))


async def _newest_first(
    nc: NATS, subject: str, query: EventQuery, matches: Matcher | None, budget: int = SCAN_BUDGET
) -> EventPage:
    if query.cursor:
        upper = _decode_cursor(query.cursor, True)
    else:
        last = await direct_get(nc, EVENTS_STREAM, last_by_subject=subject)
        if not last:
            return EventPage([], None)
        upper = last[0].sequence
    if query.until is not None:
        after_until = await _first_at_or_after(nc, query.until)
        if after_until is not None:
            upper = min(upper, after_until - 1)
    floor = 1
    if query.since is not None:
        since_seq = await _first_at_or_after(nc, query.since)
        if since_seq is None:
            return EventPage([], None)
        floor = since_seq
    items: list[EventItem] = []
    read = 0
    above = await _matching_after(nc, subject, upper)
    window = max(FIRST_WINDOW_MIN, query.limit)
    while upper >= floor and len(items) < query.limit and read < budget:
        # Filtering here means reading more than is kept: fetch in larger windows then.
        needed = query.limit - len(items) if matches is None else min(MAX_LIMIT, budget - read)
        lower, count, window = await _window(nc, subject, upper, floor, above, needed, window)
        if count == 0:
            return EventPage(items, None)
        batch = await direct_get(nc, EVENTS_STREAM, seq=lower, subject=subject, batch=count)
        read += len(batch)
        in_window = [stored for stored in batch if stored.sequence <= upper]
        for stored in reversed(in_window):
            item = item_of(stored)
            if matches is None or matches(item):
                items.append(item)
                if len(items) == query.limit:
                    more = stored.sequence > floor
                    return EventPage(items, _encode_cursor(True, stored.sequence - 1) if more else None)
        above += len(in_window)
        upper = lower - 1
    return EventPage(items, _encode_cursor(True, upper) if upper >= floor else None)


async def _matching_after(nc: NATS, subject: str, upper: int) -> int:
    """How many messages matching `subject` are stored after `upper`."""
    got = await direct_get(nc, EVENTS_STREAM, seq=upper + 1, subject=subject, batch=1)
    return got[0].pending + 1 if got else 0


async def _count_from(nc: NATS, subject: str, lower: int, upper: int, above: int) -> tuple[int, int]:
    """The first matching sequence at or after `lower`, and how many match from `lower` to `upper`."""
    probe = await direct_get(nc, EVENTS_STREAM, seq=lower, subject=subject, batch=1)
    if not probe or probe[0].sequence > upper:
        return lower, 0
    return probe[0].sequence, probe[0].pending + 1 - above


async def _window(
    nc: NATS, subject: str, upper: int, floor: int, above: int, needed: int, window: int
) -> tuple[int, int, int]:
    """Where to fetch from below `upper`: `(first sequence, how many match up to upper, next window size)`.

    The window grows by WINDOW_GROWTH until it holds `needed` matching messages or reaches `floor`;
    one holding more than FETCH_SLACK times that is narrowed by bisection against the last window
    that held too few (adjacent bounds differ by one message at most, so it ends)."""
    too_few = upper + 1
    while True:
        lower = max(floor, upper - window + 1)
        start, count = await _count_from(nc, subject, lower, upper, above)
        if count > needed * FETCH_SLACK:
            while too_few - lower > 1 and count > needed * FETCH_SLACK:
                middle = (lower + too_few) // 2
                middle_start, middle_count = await _count_from(nc, subject, middle, upper, above)
                if middle_count >= needed:
                    lower, start, count = middle, middle_start, middle_count
                else:
                    too_few = middle
            return start, count, window
        if count >= needed or lower <= floor:
            return start, count, window * WINDOW_GROWTH
        too_few = lower
        window *= WINDOW_GROWTH


# --- one event -----------------------------------------------------------------------------------


async def journey_of(nc: NATS, tenant: str, connector: str, event_id: str) -> list[JourneyRecord]:
    """Every record on the event's journey subject, in the order they were stored."""
    subject = journey_subject(tenant, connector, event_id)
    stored = await direct_get(nc, JOURNEYS_STREAM, seq=1, subject=subject, batch=MAX_JOURNEY_RECORDS)
    records = []
    for message in stored:
        try:
            record = JourneyRecord.from_json(message.data)
        except ValueError:
            continue
        if record.event_id == event_id:  # a 128-bit token collision is not this event's
            records.append(record)
    return records


async def _indexed(nc: NATS, tenant: str, connector: str, event_id: str) -> Stored | None:
    """The event its `routed` journey record points at, or None when there is none (not routed yet)."""
    return await _routed_event(nc, tenant, connector, event_id, await journey_of(nc, tenant, connector, event_id))


async def _routed_event(
    nc: NATS, tenant: str, connector: str, event_id: str, journey: list[JourneyRecord]
) -> Stored | None:
    for record in journey:
        sequence = record.fields.get("sequence")
        if record.kind == ROUTED and isinstance(sequence, int):
            stored = await one(nc, EVENTS_STREAM, sequence)
            return stored if stored is not None and _is_event(stored, tenant, connector, event_id) else None
    return None


async def show_event(nc: NATS, caller: str | None, tenant: str, connector: str, event_id: str) -> EventDetail:
    """One event with its journey; NotFound when it is not stored or not the caller's."""
    if (caller is not None and caller != tenant) or not is_name(tenant) or not is_name(connector):
        raise NotFound
    if not 1 <= len(event_id) <= MAX_ID_CHARS:
        raise NotFound
    journey = await journey_of(nc, tenant, connector, event_id)
    stored = await _routed_event(nc, tenant, connector, event_id, journey)
    note = None
    if stored is None:
        query = EventQuery(tenant=tenant, connector=connector, event_id=event_id, limit=1)
        stored = await _search_newest(nc, query)
        if stored is None:
            raise NotFound
        if not any(record.kind == ROUTED for record in journey):
            note = "the gate has not routed this event yet: its journey is empty"
    return _detail(stored, journey, note)


async def _search_newest(nc: NATS, query: EventQuery) -> Stored | None:
    """The event among the connector's FALLBACK_SEARCH newest, or None."""
    subject = subject_filter(query, query.tenant)
    page = await _newest_first(nc, subject, query, _matcher(query), budget=FALLBACK_SEARCH)
    return await one(nc, EVENTS_STREAM, page.items[0].sequence) if page.items else None


def _is_event(stored: Stored, tenant: str, connector: str, event_id: str) -> bool:
    attributes = headers_to_attributes(stored.headers)
    return (
        stored.subject.startswith(f"{EVENTS_PREFIX}.{tenant}.{connector}.")
        and attributes.get("hubtenant") == tenant
        and attributes.get("hubconnector") == connector
        and attributes.get("id") == event_id
    )


def _detail(stored: Stored, journey: list[JourneyRecord], note: str | None) -> EventDetail:
    try:
        envelope: Any = orjson.loads(stored.data)
    except orjson.JSONDecodeError:
        envelope = stored.data.decode("utf-8", "replace")
    return EventDetail(
        sequence=stored.sequence,
        subject=stored.subject,
        stored_at=stored.stored_at_text,
        envelope=envelope,
        headers=stored.headers,
        journey=journey,
        journey_note=note,
        dead_letters=[record for record in journey if record.kind == DEAD_LETTERED],
    )
