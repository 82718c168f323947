"""`connector-hub tail [SUBJECT]`: print envelopes as they are published."""

from __future__ import annotations

import asyncio
import sys

import nats
import nats.errors
from nats.aio.client import Client as NATS

from hub.runner import running_hub_endpoints
from hub.settings import Settings

DEFAULT_SUBJECT = "hub.events.>"
CONNECT_TIMEOUT_S = 5.0


def nats_url(settings: Settings) -> str:
    """HUB_NATS_URL, else the embedded server a local `connector-hub run` recorded."""
    if settings.nats_url:
        return settings.nats_url
    record = running_hub_endpoints(settings.data_dir)
    if record is None:
        raise SystemExit(
            f"connector-hub: HUB_NATS_URL is unset and no hub is running with data dir {settings.data_dir}"
        )
    return str(record["nats_url"])


async def _quiet(exc: Exception) -> None:
    """nats-py's default error callback logs a traceback per attempt; the error below says it once."""


async def connect(settings: Settings, client_name: str) -> NATS:
    """A CLI command's connection to the hub's NATS, or SystemExit saying why there is none."""
    url = nats_url(settings)
    try:
        connecting = nats.connect(url, name=client_name, connect_timeout=2, error_cb=_quiet)
        return await asyncio.wait_for(connecting, CONNECT_TIMEOUT_S)  # nats-py would retry a refused connect
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise SystemExit(f"connector-hub: cannot connect to NATS at {url}: {type(exc).__name__}") from None


async def tail(settings: Settings, subject: str, count: int | None) -> None:
    """Print each message on `subject` (one JSON envelope per line) until `count` or Ctrl-C."""
    nc = await connect(settings, "connector-hub-tail")
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
