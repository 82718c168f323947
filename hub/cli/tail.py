"""`connector-hub tail [SUBJECT]`: print envelopes as they are published."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import orjson

from hub.cli.client import connect
from hub.cli.command import Command, Invocation
from hub.settings import Settings

DEFAULT_SUBJECT = "hub.events.>"


def json_line(data: bytes) -> str:
    """A message as one compact JSON line (an envelope embeds the provider's bytes as they came, which
    may hold newlines), so `tail > file` is JSON lines; anything that is not JSON, as text on one line."""
    try:
        return orjson.dumps(orjson.loads(data)).decode()
    except orjson.JSONDecodeError:
        return data.decode(errors="replace").replace("\n", "\\n")


async def tail(settings: Settings, subject: str, count: int | None) -> None:
    """Print each message on `subject` (one JSON envelope per line) until `count` or Ctrl-C."""
    nc = await connect(settings, "connector-hub-tail")
    try:
        subscription = await nc.subscribe(subject)
        print(f"# tailing {subject}", file=sys.stderr, flush=True)
        seen = 0
        async for message in subscription.messages:
            sys.stdout.write(json_line(message.data) + "\n")
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                break
    finally:
        await nc.close()


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "subject",
        nargs="?",
        default=DEFAULT_SUBJECT,
        help=f"a NATS subject, wildcards allowed (default: {DEFAULT_SUBJECT})",
    )
    parser.add_argument("--count", type=int, help="exit after this many messages")


def _tail(run: Invocation) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(run.settings, run.args.subject, run.args.count))
    return 0


TAIL = Command(("tail",), "print envelopes as they arrive", _tail, _arguments)
