"""`connector-hub dlq list|show|redrive|discard`: dead letters in HUB_DLQ, acted on as the operator.

One sequence is redriven at once; several, or a filter, start a `redrive` job (followed until it
ends). Discard deletes at once, at most `--limit` dead letters of a filter per call."""

from __future__ import annotations

import argparse
import sys

import orjson

from hub.cli.command import Command
from hub.cli.jobs import Bus, bus_command, follow
from hub.history.deadletters import (
    MAX_PAGE,
    DeadLetterFilter,
    DeadLetterRecord,
    discard,
    get_dead_letter,
    list_dead_letters,
    redrive,
)
from hub.jobs import redrive as redrive_jobs

MAX_DISCARD = 1000


def filter_of(args: argparse.Namespace) -> DeadLetterFilter:
    """The filter the flags describe; SystemExit naming a wrong flag."""
    fields = {
        "tenant": args.tenant,
        "connector": args.connector,
        "route": args.route,
        "class": args.failure_class,
        "since": args.since,
        "until": args.until,
    }
    try:
        return DeadLetterFilter.parse({k: v for k, v in fields.items() if v is not None})
    except ValueError as exc:
        raise SystemExit(f"connector-hub dlq: {exc}") from None


def _line(letter: DeadLetterRecord) -> str:
    s = letter.summary()
    return f"{s['seq']:>8}  {s['failedAt']}  {s['tenant']}/{s['connector']}/{s['route']}  {s['class']}  {s['error']}"


async def list_letters(connected: Bus, args: argparse.Namespace) -> int:
    page = await list_dead_letters(connected.nc, filter_of(args), before=args.cursor, limit=args.limit)
    if args.json:
        body = {"deadLetters": [d.summary() for d in page.letters], "nextCursor": page.next_cursor}
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return 0
    for letter in page.letters:
        print(_line(letter))
    if page.next_cursor is not None:
        print(f"# more: --cursor {page.next_cursor}", file=sys.stderr)
    if not page.letters:
        print("no dead letters", file=sys.stderr)
    return 0


async def show_letter(connected: Bus, args: argparse.Namespace) -> int:
    letter = await get_dead_letter(connected.nc, args.seq)
    if letter is None:
        print(f"connector-hub: no dead letter at sequence {args.seq}", file=sys.stderr)
        return 1
    print(orjson.dumps(letter.to_dict(), option=orjson.OPT_INDENT_2).decode())
    return 0


def _has_filter(args: argparse.Namespace) -> bool:
    return any(
        getattr(args, name) is not None for name in ("tenant", "connector", "route", "failure_class", "since", "until")
    )


def _check_target(args: argparse.Namespace) -> None:
    if bool(args.seqs) == _has_filter(args):
        raise SystemExit("connector-hub dlq: name sequences or a filter (--tenant, --connector, ...), not both")


async def redrive_letters(connected: Bus, args: argparse.Namespace) -> int:
    _check_target(args)
    if len(args.seqs) == 1:
        letter = await get_dead_letter(connected.nc, args.seqs[0])
        if letter is None:
            print(f"connector-hub: no dead letter at sequence {args.seqs[0]}", file=sys.stderr)
            return 1
        msg_id = await redrive(connected.nc, letter)
        await connected.audit(
            letter.tenant, "deadletter_redrive", f"dlq/{letter.seq}", "redriven", invocationId=letter.invocation_id
        )
        print(f"redriven {letter.seq} as {msg_id}")
        return 0
    if args.seqs:
        job = await redrive_jobs.start_by_seqs(
            connected.jobs, None, sorted(set(args.seqs)), created_by=connected.actor.key_id
        )
    else:
        job = await redrive_jobs.start_by_filter(connected.jobs, filter_of(args), created_by=connected.actor.key_id)
    await connected.audit(job.tenant, "deadletter_redrive", f"job/{job.id}", "accepted", **job.params)
    print(f"job {job.id}")
    return 0 if args.no_follow else await follow(connected.jobs, job.id)


async def discard_letters(connected: Bus, args: argparse.Namespace) -> int:
    _check_target(args)
    if args.seqs:
        found = [await get_dead_letter(connected.nc, seq) for seq in sorted(set(args.seqs))]
        letters = [letter for letter in found if letter is not None]
        more = False
    else:
        page = await list_dead_letters(connected.nc, filter_of(args), before=None, limit=args.limit)
        letters, more = page.letters, page.next_cursor is not None
    count = 0
    for letter in letters:
        if await discard(connected.nc, letter.seq):
            count += 1
            await connected.audit(
                letter.tenant, "deadletter_discard", f"dlq/{letter.seq}", "discarded", invocationId=letter.invocation_id
            )
    print(f"discarded {count}" + (" (more match: run it again)" if more else ""))
    return 0


def _filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant")
    parser.add_argument("--connector")
    parser.add_argument("--route")
    parser.add_argument("--class", dest="failure_class", help="transient, permanent, policy_denied, ...")
    parser.add_argument("--since", help="dead-lettered at or after this RFC 3339 time")
    parser.add_argument("--until", help="dead-lettered at or before this RFC 3339 time")


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    _filter_arguments(parser)
    parser.add_argument("--cursor", type=int, help="continue below this sequence (as the last page said)")
    parser.add_argument("--limit", type=int, default=50, choices=range(1, MAX_PAGE + 1), metavar=f"1-{MAX_PAGE}")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _redrive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seqs", nargs="*", type=int, metavar="SEQ", help="dead letters by sequence")
    _filter_arguments(parser)
    parser.add_argument("--no-follow", action="store_true", help="start the job and return")


def _discard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("seqs", nargs="*", type=int, metavar="SEQ", help="dead letters by sequence")
    _filter_arguments(parser)
    parser.add_argument(
        "--limit", type=int, default=MAX_DISCARD, choices=range(1, MAX_DISCARD + 1), metavar=f"1-{MAX_DISCARD}"
    )


COMMANDS = (
    Command(("dlq", "list"), "dead letters, newest first", bus_command(list_letters), _list_arguments),
    Command(
        ("dlq", "show"),
        "one dead letter with its envelope",
        bus_command(show_letter),
        lambda parser: parser.add_argument("seq", type=int, metavar="SEQ"),
    ),
    Command(
        ("dlq", "redrive"),
        "send dead letters again to their routes as configured now",
        bus_command(redrive_letters),
        _redrive_arguments,
    ),
    Command(("dlq", "discard"), "delete dead letters", bus_command(discard_letters), _discard_arguments),
)
