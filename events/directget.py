"""JetStream direct gets, single and batched (`$JS.API.DIRECT.GET.<stream>`), for reading history.

A batched get (`batch`, with `seq` or `start_time`, and `next_by_subj` as a subject filter) answers
with up to `batch` messages on the request's reply subject, each with the `Nats-Num-Pending` header
(how many messages matching the filter come after it), then a status message `204 EOB`; `404` when
nothing matches. The server applies the filter through its subject index, so a reader never pulls
the messages it does not want. A get without `batch` answers one message (or a `404`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
import orjson
from nats.aio.client import Client as NATS

from events.envelope import rfc3339

DIRECT_GET = "$JS.API.DIRECT.GET."
STATUS = "Status"
NOT_FOUND = "404"
END_OF_BATCH = "204"
METADATA = frozenset(
    {"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Num-Pending", "Nats-Last-Sequence"}
)
"""The headers a direct get adds to a stored message; the message's own headers are the rest."""
TIMEOUT_S = 5.0


class HistoryUnavailable(Exception):
    """The stream did not answer (NATS unreachable, a timeout, a status other than found/not found)."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored message, as a direct get returns it."""

    sequence: int
    subject: str
    stored_at: float
    """When the stream stored it (epoch seconds)."""
    headers: dict[str, str]
    """The message's own headers (the direct get's metadata taken out)."""
    data: bytes
    pending: int
    """Messages matching the request's filter after this one (0 for a get without `batch`)."""

    @property
    def stored_at_text(self) -> str:
        """`stored_at` as RFC 3339."""
        return rfc3339(self.stored_at)


async def direct_get(
    nc: NATS,
    stream: str,
    *,
    seq: int | None = None,
    subject: str | None = None,
    last_by_subject: str | None = None,
    start_time: float | None = None,
    batch: int | None = None,
    timeout_s: float = TIMEOUT_S,
) -> list[Stored]:
    """The messages a direct get answers, in stream order; `[]` when nothing matches."""
    request: dict[str, Any] = {}
    if seq is not None:
        request["seq"] = max(seq, 1)
    if subject is not None:
        request["next_by_subj"] = subject
    if last_by_subject is not None:
        request["last_by_subj"] = last_by_subject
    if start_time is not None:
        request["start_time"] = datetime.fromtimestamp(start_time, UTC).isoformat().replace("+00:00", "Z")
    if batch is not None:
        request["batch"] = batch
    inbox = nc.new_inbox()
    found: list[Stored] = []
    try:
        subscription = await nc.subscribe(inbox)
        try:
            await nc.publish(DIRECT_GET + stream, orjson.dumps(request), reply=inbox)
            while True:
                message = await subscription.next_msg(timeout_s)
                headers = message.headers or {}
                status = headers.get(STATUS)
                if status in (NOT_FOUND, END_OF_BATCH):
                    return found
                if status:
                    raise HistoryUnavailable(f"{stream} answered status {status}")
                found.append(_stored(headers, message.data))
                if batch is None or len(found) >= batch:
                    return found
        finally:
            await subscription.unsubscribe()
    except (nats.errors.Error, TimeoutError) as exc:
        raise HistoryUnavailable(f"{stream} did not answer: {type(exc).__name__}") from None


async def one(nc: NATS, stream: str, seq: int) -> Stored | None:
    """The message at `seq`, or None."""
    got = await direct_get(nc, stream, seq=seq)
    return got[0] if got else None


def _stored(headers: dict[str, str], data: bytes) -> Stored:
    own = {k: v for k, v in headers.items() if k not in METADATA}
    return Stored(
        sequence=int(headers["Nats-Sequence"]),
        subject=headers["Nats-Subject"],
        stored_at=_timestamp(headers.get("Nats-Time-Stamp", "")),
        headers=own,
        data=data,
        pending=int(headers.get("Nats-Num-Pending") or 0),
    )


def _timestamp(text: str) -> float:
    """`2026-12-06T09:10:18.404160149Z` (nanoseconds, which `fromisoformat` does not take) in epoch seconds."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0
    return moment + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
