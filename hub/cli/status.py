"""`connector-hub status [TENANT/CONNECTOR]`: each poll source's state, as every hub instance sees it.

The status lives in Valkey (written by whichever instance ran the source), so this reads Valkey:
`HUB_REDIS_URL`, else the embedded server a local `connector-hub run` recorded. Sources come from
`HUB_CONNECTORS` when set (disabled ones are shown as `disabled`), else from what Valkey holds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.app.connections import connect_redis
from hub.cli.client import redis_url
from hub.cli.command import Command
from hub.poll.store import PollStore, SourceKey
from hub.settings import Settings
from schemas.loader import load_specs

COLUMNS = ("state", "lastRunAt", "lastSuccessAt", "nextRunAt", "itemsPublished", "cursor", "lastError")


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source's status row."""

    source: str
    fields: dict[str, str]

    def to_dict(self) -> dict[str, str]:
        return {"connector": self.source, **self.fields}


async def poll_status(settings: Settings, target: str | None) -> list[SourceStatus]:
    """The status of every poll source (or of `target`)."""
    redis = connect_redis(redis_url(settings), settings.store_timeout.total_seconds())
    try:
        store = PollStore(redis)
        rows = []
        for key, enabled in await _sources(settings, redis):
            if target and key.label != target:
                continue
            fields = await store.status(key)
            fields["state"] = fields.get("state", "active") if enabled else "disabled"
            rows.append(SourceStatus(key.label, fields))
        return rows
    finally:
        await redis.aclose()


async def _sources(settings: Settings, redis: Redis) -> list[tuple[SourceKey, bool]]:
    if settings.connectors is not None:
        return [
            (SourceKey(*spec.connector.key), spec.connector.spec.enabled)
            for spec in load_specs(settings.connectors).connectors
            if spec.connector.spec.type == "poll"
        ]
    found = []
    async for raw in redis.scan_iter(match="poll:*:status", count=500):
        _, tenant, connector, _ = (raw.decode() if isinstance(raw, bytes) else raw).split(":")
        found.append((SourceKey(tenant, connector), True))
    return sorted(found, key=lambda item: item[0].label)


async def show_status(settings: Settings, target: str | None, *, as_json: bool) -> int:
    """Print the status table (or JSON); exit 1 when `target` is not a poll source."""
    try:
        rows = await poll_status(settings, target)
    except RedisError as exc:
        print(f"connector-hub: cannot read the status from Valkey: {type(exc).__name__}", file=sys.stderr)
        return 1
    if target and not rows:
        print(f"connector-hub: no poll connector {target}", file=sys.stderr)
        return 1
    if as_json:
        print(orjson.dumps([row.to_dict() for row in rows], option=orjson.OPT_INDENT_2).decode())
        return 0
    for row in rows:
        print(row.source)
        for column in COLUMNS:
            print(f"  {column:<15}{row.fields.get(column, '-')}")
    if not rows:
        print("no poll connectors")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TENANT/CONNECTOR", help="one connector (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")


STATUS = Command(
    ("status",),
    "the state of poll connectors (from Valkey)",
    lambda run: asyncio.run(show_status(run.settings, run.args.target, as_json=run.args.json)),
    _arguments,
)
