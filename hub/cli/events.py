"""`connector-hub events list` and `events show`: stored events and each event's journey, read from the
running hub's bus as the operator, through the same reader as `GET /v1/events` (hub/history/events.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from events.directget import HistoryUnavailable
from hub.cli.client import connect
from hub.cli.command import Command, Invocation
from hub.history.events import (
    EventDetail,
    EventPage,
    EventQuery,
    HistoryError,
    NotFound,
    list_events,
    parse_limit,
    parse_time,
    show_event,
)
from hub.settings import Settings

REFUSED = 2
NOT_FOUND = 1


def _split(target: str) -> tuple[str, str | None]:
    """`TENANT/CONNECTOR` or `TENANT`."""
    tenant, _, connector = target.partition("/")
    if not tenant or (_ and not connector):
        raise HistoryError("target", f"{target!r} is not TENANT/CONNECTOR")
    return tenant, connector or None


def query_of(args: argparse.Namespace) -> EventQuery:
    """The listing's query from the command line; HistoryError naming a bad option."""
    tenant, connector = _split(args.target) if args.target else (args.tenant, None)
    if args.target and args.tenant and args.tenant != tenant:
        raise HistoryError("tenant", "--tenant and TENANT/CONNECTOR name different tenants")
    return EventQuery(
        tenant=tenant,
        connector=connector,
        subject=args.subject,
        type_glob=args.type,
        since=parse_time("since", args.since) if args.since else None,
        until=parse_time("until", args.until) if args.until else None,
        event_id=args.id,
        newest_first=not args.oldest_first,
        cursor=args.cursor,
        limit=parse_limit(args.limit),
    )


def render_page(page: EventPage) -> str:
    """A table of the events, then the next cursor."""
    rows = [("SEQ", "RECEIVED", "TENANT/CONNECTOR", "TYPE", "ID", "BYTES")]
    rows += [
        (str(i.sequence), i.received_at, f"{i.tenant}/{i.connector}", i.type, i.id, str(i.size)) for i in page.items
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    if not page.items:
        lines = ["no events"]
    lines.append(f"next cursor: {page.next_cursor}" if page.next_cursor else "no more events")
    return "\n".join(lines)


def render_detail(detail: EventDetail) -> str:
    """The envelope's attributes, its provenance, then the journey as a timeline."""
    envelope = detail.envelope if isinstance(detail.envelope, dict) else {}
    lines = [f"event {envelope.get('id', '?')}  (sequence {detail.sequence}, stored {detail.stored_at})"]
    for name in ("type", "source", "subject", "time"):
        if name in envelope:
            lines.append(f"  {name:<10} {envelope[name]}")
    lines.append(f"  {'nats':<10} {detail.subject}")
    lines.append("provenance")
    lines += [f"  {name:<14} {value}" for name, value in detail.provenance.items()]
    lines.append("journey")
    if detail.journey_note:
        lines.append(f"  ({detail.journey_note})")
    for record in detail.journey:
        lines.append(f"  {record.at}  {record.kind:<13} {_step(record.kind, record.fields)}")
    if detail.dead_letters:
        lines.append(f"dead-lettered: {len(detail.dead_letters)} invocation(s)")
    return "\n".join(lines)


def _step(kind: str, fields: dict[str, Any] | Any) -> str:
    if kind == "routed":
        routes = fields.get("routes") or []
        decided = ", ".join(f"{r.get('route')}: {r.get('effect')} ({r.get('rule')})" for r in routes)
        return f"type {fields.get('type')}; " + (decided or "no route matched")
    if kind == "throttled":
        return f"{fields.get('route')}: waits {fields.get('delayMs')} ms ({fields.get('reason')})"
    if kind == "attempt":
        status = fields.get("status")
        result = fields.get("outcome")
        if result != "delivered":
            result = f"{result}: {fields.get('error')}"
        code = f" http {status}" if status is not None else ""
        return f"{fields.get('route')}: attempt {fields.get('attempt')}{code}, {fields.get('latencyMs')} ms, {result}"
    if kind == "dead_lettered":
        return f"{fields.get('route')}: {fields.get('class')}: {fields.get('error')}"
    return orjson.dumps(fields).decode()


async def _list(settings: Settings, query: EventQuery) -> EventPage:
    nc = await connect(settings, "connector-hub-events")
    try:
        return await list_events(nc, None, query)
    finally:
        await nc.close()


async def _show(settings: Settings, tenant: str, connector: str, event_id: str) -> EventDetail:
    nc = await connect(settings, "connector-hub-events")
    try:
        return await show_event(nc, None, tenant, connector, event_id)
    finally:
        await nc.close()


def _events_list(run: Invocation) -> int:
    try:
        query = query_of(run.args)
        page = asyncio.run(_list(run.settings, query))
    except HistoryError as exc:
        print(f"connector-hub: {exc.parameter}: {exc}", file=sys.stderr)
        return REFUSED
    except NotFound:
        print("connector-hub: no such tenant or connector", file=sys.stderr)
        return NOT_FOUND
    except HistoryUnavailable as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return NOT_FOUND
    print(orjson.dumps(page.as_dict()).decode() if run.args.json else render_page(page))
    return 0


def _events_show(run: Invocation) -> int:
    try:
        tenant, connector = _split(run.args.target)
        if connector is None:
            raise HistoryError("target", f"{run.args.target!r} is not TENANT/CONNECTOR")
        detail = asyncio.run(_show(run.settings, tenant, connector, run.args.event_id))
    except HistoryError as exc:
        print(f"connector-hub: {exc.parameter}: {exc}", file=sys.stderr)
        return REFUSED
    except NotFound:
        print(f"connector-hub: no event {run.args.event_id!r} of {run.args.target}", file=sys.stderr)
        return NOT_FOUND
    except HistoryUnavailable as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return NOT_FOUND
    print(orjson.dumps(detail.as_dict()).decode() if run.args.json else render_detail(detail))
    return 0


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TENANT/CONNECTOR", help="one connector (or TENANT)")
    parser.add_argument("--tenant", help="one tenant's events")
    parser.add_argument("--subject", metavar="PATTERN", help="a subject pattern under hub.events.")
    parser.add_argument("--type", metavar="GLOB", help="event types, e.g. 'github.pull_*'")
    parser.add_argument("--since", metavar="TIME", help="RFC 3339, or a duration back from now (15m, 2h)")
    parser.add_argument("--until", metavar="TIME", help="RFC 3339, or a duration back from now")
    parser.add_argument("--id", help="one event id")
    parser.add_argument("--oldest-first", action="store_true", help="oldest first (default: newest first)")
    parser.add_argument("--limit", default=None, help="events per page, 1-500 (default 50)")
    parser.add_argument("--cursor", help="the next cursor a previous page printed")
    parser.add_argument("--json", action="store_true", help="the page as JSON")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TENANT/CONNECTOR")
    parser.add_argument("event_id", metavar="EVENT_ID")
    parser.add_argument("--json", action="store_true", help="the event as JSON")


COMMANDS: tuple[Command, ...] = (
    Command(("events", "list"), "stored events, newest first, a page at a time", _events_list, _list_arguments),
    Command(("events", "show"), "one event: envelope, provenance and its journey", _events_show, _show_arguments),
)
