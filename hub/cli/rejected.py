"""`rejected list|show|retry`: the refused requests the hub kept (hub/history/rejected.py), as the
operator, directly on the running hub's bus; a retry uses the connector as deployed now and is audited."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import time
from datetime import datetime

import orjson
from nats.aio.client import Client as NATS

from adapters.errors import RequestRejected
from events.directget import HistoryUnavailable
from events.subjects import is_name
from hub.app.connections import connect_redis
from hub.cli.client import connect, deployed_connector, redis_url
from hub.cli.command import Command, Invocation
from hub.cli.control import EXIT_FAILED, split_target
from hub.cli.jobs import bus, follow
from hub.control.audit import AuditLog
from hub.control.plane import Actor
from hub.errors import ConfigError
from hub.history.rejected import (
    MAX_LIMIT,
    KeptRequest,
    Query,
    RetryAudit,
    list_kept,
    retry,
    retry_path,
    show,
)
from hub.jobs import retry_rejected as retry_rejected_job
from hub.settings import Settings
from schemas.durations import parse_duration

CLIENT_NAME = "connector-hub-cli"


def _names(target: str) -> tuple[str, str | None]:
    """`TENANT` or `TENANT/CONNECTOR`, each a valid name, else SystemExit naming what is wrong."""
    tenant, _, connector = target.partition("/")
    for kind, name in (("tenant", tenant), ("connector", connector or None)):
        if name is not None and not is_name(name):
            raise SystemExit(f"connector-hub: {name!r} is not a valid {kind} name ([a-z0-9-], 1-63)")
    return tenant, connector or None


def _since(text: str | None) -> float | None:
    """`--since`: an RFC 3339 time, or a duration before now (`30m`, `2h`)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return time.time() - parse_duration(text).total_seconds()
        except ValueError:
            raise SystemExit(f"connector-hub: --since {text!r} is neither an RFC 3339 time nor a duration") from None
    if moment.tzinfo is None:
        raise SystemExit("connector-hub: --since must name its time zone (Z or an offset)")
    return moment.timestamp()


def _seq(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise SystemExit(f"connector-hub: {text!r} is not a sequence number (as `rejected list` shows)")
    return int(text)


async def _kept(nc: NATS, target: str, seq: int) -> KeptRequest:
    tenant, name = split_target(target)
    _names(target)
    kept = await show(nc, tenant, name, seq)
    if kept is None:
        raise SystemExit(f"connector-hub: no kept request {seq} of {target}")
    return kept


async def list_rejected(settings: Settings, query: Query, *, as_json: bool) -> int:
    """One line per kept request, newest first."""
    nc = await connect(settings, CLIENT_NAME)
    try:
        page = await list_kept(nc, query)
    finally:
        await nc.close()
    rows = [k.summary() for k in page.items]
    if as_json:
        print(orjson.dumps({"rejected": rows, "nextCursor": page.next_cursor}, option=orjson.OPT_INDENT_2).decode())
        return 0
    for row in rows:
        print(
            f"{row['seq']:<8} {row['receivedAt']}  {row['tenant']}/{row['connector']:<24} {row['status']} "
            f"{row['error']}/{row['reason']:<24} {row['remote'] or '-':<16} {row['method']} {row['path']}"
        )
    if not rows:
        print("no kept requests")
    elif page.next_cursor is not None:
        print(f"(more: the API's cursor={page.next_cursor})")
    return 0


async def show_rejected(settings: Settings, target: str, seq: int) -> int:
    """The kept request as JSON, its body also as text when it is UTF-8."""
    nc = await connect(settings, CLIENT_NAME)
    try:
        kept = await _kept(nc, target, seq)
    finally:
        await nc.close()
    shown = kept.to_dict()
    with contextlib.suppress(UnicodeDecodeError):  # else bodyBase64 alone has it
        shown["body"] = base64.b64decode(shown["bodyBase64"]).decode("utf-8")
    print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
    return 0


async def retry_rejected(settings: Settings, target: str, seq: int) -> int:
    """Retry one kept request with the connector as deployed now; 0 when it was recovered or was
    already delivered, 1 when it is still refused or could not be tried."""
    connector = await deployed_connector(settings, target)
    nc = await connect(settings, CLIENT_NAME)
    redis = connect_redis(redis_url(settings), settings.store_timeout.total_seconds())
    try:
        kept = await _kept(nc, target, seq)
        actor = Actor.cli()
        audit = RetryAudit(AuditLog(nc.jetstream()), actor.key_id, actor.request_id, actor.started)
        async with retry_path(nc, redis, settings) as path:
            result = await retry(path, connector, kept, audit)
    except RequestRejected as exc:  # another delivery in flight, or the bus unavailable
        print(f"connector-hub: retry of {target} {seq} not done ({exc.reason}): try again later", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await redis.aclose()
        await nc.close()
    if result.outcome == "still_refused":
        print(f"still refused: {result.error}/{result.reason}: {result.detail}")
        return EXIT_FAILED
    print(f"{result.outcome}: {', '.join(result.ids) or 'no events'}")
    return 0


async def retry_all(settings: Settings, tenant: str | None, where: dict[str, object], *, follow_job: bool) -> int:
    """Start a job retrying every kept request that matches, then follow it."""
    async with bus(settings) as connected:
        job = await retry_rejected_job.start(connected.jobs, tenant, where, created_by=connected.actor.key_id)
        detail = {key: value for key, value in where.items() if value is not None}
        await connected.audit(tenant, "rejected_retry_start", f"job/{job.id}", "accepted", **detail)
        print(f"job {job.id}")
        return await follow(connected.jobs, job.id) if follow_job else 0


def _run(run: Invocation, verb: str) -> int:
    args, settings = run.args, run.settings
    try:
        if verb == "retry-all":
            tenant, connector = _names(args.target) if args.target else (None, None)
            where: dict[str, object] = {"connector": connector, "reason": args.reason, "since": _since(args.since)}
            return asyncio.run(retry_all(settings, tenant, where, follow_job=not args.no_follow))
        if verb == "list":
            tenant, connector = _names(args.target) if args.target else (None, None)
            query = Query(tenant, connector, reason=args.reason, since=_since(args.since), limit=args.limit)
            return asyncio.run(list_rejected(settings, query, as_json=args.json))
        if verb == "show":
            return asyncio.run(show_rejected(settings, args.target, _seq(args.seq)))
        return asyncio.run(retry_rejected(settings, args.target, _seq(args.seq)))
    except HistoryUnavailable as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"connector-hub: {problem.message}", file=sys.stderr)
        return EXIT_FAILED


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TENANT[/CONNECTOR]", help="default: every tenant")
    parser.add_argument("--reason", help="only this refusal (error or reason, e.g. bad_signature, no_match)")
    parser.add_argument("--since", help="received since: an RFC 3339 time, or a duration before now (2h)")
    parser.add_argument("--limit", type=int, default=50, choices=range(1, MAX_LIMIT + 1), metavar=f"1-{MAX_LIMIT}")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _one_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TENANT/CONNECTOR")
    parser.add_argument("seq", metavar="SEQ", help="the sequence `rejected list` shows")


def _retry_all_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TENANT[/CONNECTOR]", help="default: every tenant")
    parser.add_argument("--reason", help="only this refusal (error or reason, e.g. bad_signature, no_match)")
    parser.add_argument("--since", help="received since: an RFC 3339 time, or a duration before now (2h)")
    parser.add_argument("--no-follow", action="store_true", help="print the job's id and return")


COMMANDS = (
    Command(("rejected", "list"), "refused requests kept, newest first", lambda r: _run(r, "list"), _list_arguments),
    Command(
        ("rejected", "show"),
        "one kept request: refusal, headers, body",
        lambda r: _run(r, "show"),
        _one_arguments,
    ),
    Command(
        ("rejected", "retry"),
        "re-verify a kept request with the current secrets; ingest it if it verifies",
        lambda r: _run(r, "retry"),
        _one_arguments,
    ),
    Command(
        ("rejected", "retry-all"),
        "a job retrying every kept request that matches, with the current secrets; follows it",
        lambda r: _run(r, "retry-all"),
        _retry_all_arguments,
    ),
)
