"""`connector-hub tail [SUBJECT]`: print envelopes as they are published."""

from __future__ import annotations

import sys

import nats
import orjson

from hub.runner import endpoints_file
from hub.settings import Settings

DEFAULT_SUBJECT = "hub.events.>"


def nats_url(settings: Settings) -> str:
    """HUB_NATS_URL, else the embedded server a local `connector-hub run` recorded."""
    if settings.nats_url:
        return settings.nats_url
    record = endpoints_file(settings.data_dir)
    if not record.is_file():
        raise SystemExit(f"connector-hub: no HUB_NATS_URL and no running hub recorded in {record}")
    return str(orjson.loads(record.read_bytes())["nats_url"])


async def tail(settings: Settings, subject: str, count: int | None) -> None:
    """Print each message on `subject` (one JSON envelope per line) until `count` or Ctrl-C."""
    nc = await nats.connect(nats_url(settings), name="connector-hub-tail", connect_timeout=2)
    try:
        subscription = await nc.subscribe(subject)
        print(f"# tailing {subject}", file=sys.stderr, flush=True)
        seen = 0
        async for message in subscription.messages:
            sys.stdout.write(message.data.decode(errors="replace") + "\n")
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                break
    finally:
        await nc.close()
