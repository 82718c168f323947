"""Dead letters in HUB_DLQ (events/deadletter.py records on `hub.dlq.<tenant>.<connector>.<route>`):
list, show, redrive to the route as configured now, discard.

Reads use JetStream's batched direct get (events/directget.py), so the server filters by
subject: a listing never pulls the whole stream to the client.

A redrive publishes the dead letter's envelope as a new invocation of its route, under the
ORIGINAL invocation id in `Hub-Invocation-Id` (the dispatch consumer prefers it, so the target's
`Idempotency-Key` is unchanged and a target that applied the invocation recognises it) and a fresh,
deterministic `Nats-Msg-Id` (`<invocation id>:redrive-<dlq sequence>`): JetStream does not take it for
the original, and two redrives of one dead letter are one message. The dead letter is deleted only
after the invocation's PubAck. The limiter forgot the invocation's attempts when it was
dead-lettered (hub/gate/dispatch_consumer.py `_dead_letter`), so the redrive starts with fresh ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.js.errors import APIError

from events import journey
from events.deadletter import FailureClass
from events.directget import Stored, direct_get, one
from events.envelope import Envelope, headers_to_attributes
from events.journey import JourneyWriter
from events.streams import DLQ_STREAM
from events.subjects import DLQ_PREFIX, invocation_subject, is_name
from hub.gate.dispatch_consumer import INVOCATION_ID_HEADER
from hub.gate.policy_consumer import MSG_ID, ROUTE_HEADER

READ_BATCH = 256
"""Messages per batched direct get."""
PUBLISH_TIMEOUT_S = 5.0
MAX_PAGE = 500
NO_MESSAGE = frozenset({10057, 10043})
"""JetStream's error codes for deleting a sequence that holds no message (deleted, or never stored)."""


def parse_time(name: str, value: object) -> datetime | None:
    """An RFC 3339 time from a query or body, or None; ValueError naming the field."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an RFC 3339 time, e.g. 2026-01-02T03:04:05Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters: by tenant, connector, route (names), failure class and time."""

    tenant: str | None = None
    connector: str | None = None
    route: str | None = None
    failure_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, fields: Mapping[str, Any]) -> DeadLetterFilter:
        """From query or body fields; ValueError naming the field that is wrong."""
        names: dict[str, str | None] = {}
        for name in ("tenant", "connector", "route"):
            value = fields.get(name)
            if value is not None and (not isinstance(value, str) or not is_name(value)):
                raise ValueError(f"{name} must be a name ([a-z0-9-], 1-63 characters)")
            names[name] = value
        failure_class = fields.get("class")
        if failure_class is not None and failure_class not in {c.value for c in FailureClass}:
            raise ValueError(f"class must be one of {', '.join(c.value for c in FailureClass)}")
        return cls(
            names["tenant"],
            names["connector"],
            names["route"],
            failure_class,
            parse_time("since", fields.get("since")),
            parse_time("until", fields.get("until")),
        )

    def subject(self) -> str:
        """The subject filter the server applies."""
        return ".".join((DLQ_PREFIX, self.tenant or "*", self.connector or "*", self.route or "*"))

    def matches(self, letter: DeadLetterRecord) -> bool:
        """What the subject filter cannot check: the class and the time."""
        if self.failure_class is not None and letter.failure_class != self.failure_class:
            return False
        if self.since is not None and letter.time < self.since:
            return False
        return self.until is None or letter.time <= self.until

    def to_dict(self) -> dict[str, str]:
        """The filter as JSON fields (a job's parameters)."""
        fields = {
            "tenant": self.tenant,
            "connector": self.connector,
            "route": self.route,
            "class": self.failure_class,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One dead letter as stored, with its sequence in HUB_DLQ."""

    seq: int
    time: datetime
    record: dict[str, Any]

    @classmethod
    def of(cls, message: Stored) -> DeadLetterRecord | None:
        """The record, or None when the message is not a dead letter of the hub."""
        try:
            record = orjson.loads(message.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict) or not all(
            isinstance(record.get(k), str) for k in ("invocationId", "tenant", "connector", "route")
        ):
            return None
        return cls(message.sequence, datetime.fromtimestamp(message.stored_at, UTC), record)

    @property
    def tenant(self) -> str:
        return str(self.record["tenant"])

    @property
    def connector(self) -> str:
        return str(self.record["connector"])

    @property
    def route(self) -> str:
        return str(self.record["route"])

    @property
    def invocation_id(self) -> str:
        return str(self.record["invocationId"])

    @property
    def failure_class(self) -> str:
        return str(self.record.get("class", ""))

    def summary(self) -> dict[str, Any]:
        """What a listing shows (no envelope)."""
        fields = ("invocationId", "tenant", "connector", "route", "target", "class", "error", "attempts", "failedAt")
        return {"seq": self.seq, **{k: self.record.get(k) for k in fields}}

    def to_dict(self) -> dict[str, Any]:
        """Everything, the envelope included."""
        return {"seq": self.seq, **self.record}

    def envelope_bytes(self) -> bytes:
        """The dead-lettered envelope as it was dispatched."""
        envelope = self.record.get("envelope")
        return envelope.encode() if isinstance(envelope, str) else orjson.dumps(envelope)


@dataclass(frozen=True, slots=True)
class Page:
    """A page of dead letters, newest first; `next_cursor` continues below the last one."""

    letters: list[DeadLetterRecord]
    next_cursor: int | None


async def list_dead_letters(nc: NATS, where: DeadLetterFilter, *, before: int | None, limit: int) -> Page:
    """The newest `limit` dead letters matching `where` with a sequence below `before` (None: all).

    The stream is read forward only, so this reads windows of sequences backwards from `before`,
    each window forward with the server's subject filter, doubling the window until the page is full
    or the stream's first sequence (or `since`) is reached."""
    js = nc.jetstream()
    state = (await js.stream_info(DLQ_STREAM)).state
    if not state.messages:
        return Page([], None)
    high = min(before if before is not None else state.last_seq + 1, state.last_seq + 1)
    window = max(limit * 2, READ_BATCH)
    found: list[DeadLetterRecord] = []  # ascending
    low = high
    while low > state.first_seq and len(found) < limit:
        low = max(state.first_seq, high - window)
        chunk = [m for m in await _read_range(nc, where.subject(), low, high) if where.matches(m)]
        found = chunk + found
        reached_since = where.since is not None and chunk and chunk[0].time < where.since
        if reached_since:
            break
        high, window = low, window * 2
    page = list(reversed(found[-limit:]))
    more = len(found) > limit or (low > state.first_seq and len(page) == limit)
    return Page(page, page[-1].seq if more and page else None)


async def _read_range(nc: NATS, subject: str, low: int, high: int) -> list[DeadLetterRecord]:
    """Every dead letter on `subject` with `low <= seq < high`."""
    letters: list[DeadLetterRecord] = []
    seq = low
    while seq < high:
        messages = await direct_get(nc, DLQ_STREAM, seq=seq, subject=subject, batch=READ_BATCH)
        for message in messages:
            if message.sequence >= high:
                return letters
            if (letter := DeadLetterRecord.of(message)) is not None:
                letters.append(letter)
        if len(messages) < READ_BATCH:
            return letters
        seq = messages[-1].sequence + 1
    return letters


async def get_dead_letter(nc: NATS, seq: int) -> DeadLetterRecord | None:
    """The dead letter at `seq`, or None (none there, deleted, or not a dead letter)."""
    message = await one(nc, DLQ_STREAM, seq)
    return DeadLetterRecord.of(message) if message is not None else None


def redrive_msg_id(letter: DeadLetterRecord) -> str:
    """The redrive's own message id: fresh for JetStream, the same for every redrive of this dead letter."""
    return f"{letter.invocation_id}:redrive-{letter.seq}"


async def redrive(nc: NATS, letter: DeadLetterRecord) -> str:
    """Publish the dead letter as a new invocation of its route, then delete it; its message id."""
    js = nc.jetstream()
    body = letter.envelope_bytes()
    try:
        ce_headers = Envelope.from_json(body).to_headers()
    except (ValueError, TypeError):  # not an envelope: the dispatch consumer will dead-letter it again, saying so
        ce_headers = {}
    msg_id = redrive_msg_id(letter)
    headers = ce_headers | {
        "Content-Type": "application/cloudevents+json",
        ROUTE_HEADER: letter.route,
        INVOCATION_ID_HEADER: letter.invocation_id,
        MSG_ID: msg_id,
    }
    subject = invocation_subject(letter.tenant, letter.connector, letter.route)
    await js.publish(subject, body, timeout=PUBLISH_TIMEOUT_S, headers=headers)
    await discard(nc, letter.seq)
    if event_id := headers_to_attributes(ce_headers).get("id"):
        record = journey.redriven(event_id, letter.invocation_id, letter.route, letter.seq)
        await JourneyWriter(nc).write(letter.tenant, letter.connector, record, msg_id)
    return msg_id


async def discard(nc: NATS, seq: int) -> bool:
    """Delete the dead letter at `seq`; False when it was not there (any more)."""
    try:
        return await nc.jetstream().delete_msg(DLQ_STREAM, seq)
    except APIError as exc:
        if exc.err_code in NO_MESSAGE:
            return False
        raise
