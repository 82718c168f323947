"""`connector-hub status [TENANT/CONNECTOR]`: each connector's state, as every hub instance sees it.

With a hub running (and no `--connectors`), every connector of its spec store, webhook and poll
alike: the shared status from the status bucket, and for a poll source what its runs recorded in
Valkey. Otherwise the poll sources of the spec files (disabled ones shown as `disabled`), read from
Valkey: `HUB_REDIS_URL`, else the embedded server a local `connector-hub run` recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.app.connections import connect_redis
from hub.cli.client import control_plane, reads_deployed, redis_url
from hub.cli.command import Command, Invocation
from hub.control.status import ConnectorStatus
from hub.poll.store import PollStore, SourceKey
from hub.settings import Settings
from schemas.loader import load_specs

DEPLOYED_COLUMNS = ("type", "revision", "healthCheckedAt", "certification", "slo")
"""What the running hub's shared status adds for every connector (state, lastSuccessAt and lastError are in COLUMNS)."""
COLUMNS = ("state", "lastRunAt", "lastSuccessAt", "nextRunAt", "itemsPublished", "cursor", "lastError")


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source's status row."""

    source: str
    fields: dict[str, str]

    def to_dict(self) -> dict[str, str]:
        return {"connector": self.source, **self.fields}


async def poll_status(settings: Settings, target: str | None, *, from_store: bool = False) -> list[SourceStatus]:
    """The status of every poll source (or of `target`): those of the spec files, or (`from_store`, or
    no files) every source Valkey holds a status of."""
    redis = connect_redis(redis_url(settings), settings.store_timeout.total_seconds())
    try:
        store = PollStore(redis)
        rows = []
        for key, enabled in await _sources(None if from_store else settings.connectors, redis):
            if target and key.label != target:
                continue
            fields = await store.status(key)
            fields["state"] = fields.get("state", "active") if enabled else "disabled"
            rows.append(SourceStatus(key.label, fields))
        return rows
    finally:
        await redis.aclose()


async def _sources(connectors: Path | None, redis: Redis) -> list[tuple[SourceKey, bool]]:
    if connectors is not None:
        return [
            (SourceKey(*spec.connector.key), spec.connector.spec.enabled)
            for spec in load_specs(connectors).connectors
            if spec.connector.spec.type == "poll"
        ]
    found = []
    async for raw in redis.scan_iter(match="poll:*:status", count=500):
        _, tenant, connector, _ = (raw.decode() if isinstance(raw, bytes) else raw).split(":")
        found.append((SourceKey(tenant, connector), True))
    return sorted(found, key=lambda item: item[0].label)


async def deployed_status(settings: Settings, target: str | None) -> list[SourceStatus]:
    """Every connector the running hub's spec store holds (or `target`), webhook and poll alike: its
    shared status, and for a poll source what its runs recorded in Valkey."""
    async with control_plane(settings) as plane:
        stored = await plane.specs.connectors()
        statuses = await plane.statuses.all()
    polled = {row.source: row.fields for row in await poll_status(settings, target, from_store=True)}
    rows = []
    for spec in stored:
        document = spec.document
        label = "/".join((document.metadata.tenant, document.metadata.name))
        if target and label != target:
            continue
        shared = statuses.get((document.metadata.tenant, document.metadata.name))
        fields = {"type": getattr(document.spec, "type", ""), "revision": str(spec.revision)}
        fields |= {k: str(v) for k, v in (shared.to_dict() if shared else {"state": "provisioning"}).items() if v}
        fields |= _slo_fields(shared)
        fields |= {k: v for k, v in polled.get(label, {}).items() if k != "state"}
        rows.append(SourceStatus(label, fields))
    return rows


def _slo_fields(status: ConnectorStatus | None) -> dict[str, str]:
    """The certification and the SLOs as one line each (`failed since ... (errorRate 0.4 > 0.1 at ...)`)."""
    fields = {}
    if status is not None and status.certification is not None:
        fields["certification"] = status.certification.summary
    if status is not None and status.slo is not None:
        fields["slo"] = status.slo.summary
    return fields


async def show_status(settings: Settings, target: str | None, *, as_json: bool, deployed: bool = False) -> int:
    """Print the status table (or JSON): every connector of the running hub when `deployed`, else the
    poll sources of the spec files; exit 1 when `target` is not one of them."""
    try:
        rows = await (deployed_status(settings, target) if deployed else poll_status(settings, target))
    except RedisError as exc:
        print(f"connector-hub: cannot read the status from Valkey: {type(exc).__name__}", file=sys.stderr)
        return 1
    if target and not rows:
        print(f"connector-hub: no {'' if deployed else 'poll '}connector {target}", file=sys.stderr)
        return 1
    if as_json:
        print(orjson.dumps([row.to_dict() for row in rows], option=orjson.OPT_INDENT_2).decode())
        return 0
    for row in rows:
        print(row.source)
        for column in (*DEPLOYED_COLUMNS, *COLUMNS) if deployed else COLUMNS:
            if not deployed or column in row.fields:
                print(f"  {column:<{16 if deployed else 15}}{row.fields.get(column, '-')}")
    if not rows:
        print("no connectors" if deployed else "no poll connectors")
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TENANT/CONNECTOR", help="one connector (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _status(run: Invocation) -> int:
    deployed = reads_deployed(run)
    return asyncio.run(show_status(run.settings, run.args.target, as_json=run.args.json, deployed=deployed))


STATUS = Command(
    ("status",),
    "the state of every connector of the running hub (with --connectors or no hub: the files' poll sources)",
    _status,
    _arguments,
)
