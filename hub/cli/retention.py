"""`retention`: each stream's retention (age and byte cap) beside its current size, and how long a
deleted connector stays restorable (hub/control/retention.py), read from the running hub's bus."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from hub.cli.client import connect
from hub.cli.command import Command, Invocation
from hub.control.buckets import TRASH_BUCKET, kv_bucket
from hub.control.retention import retention_report
from hub.control.trash import Trash


def _size(count: int) -> str:
    """Bytes the way people read them: `0 B`, `12.3 KiB`, `4.0 GiB`."""
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def render(report: dict[str, Any]) -> str:
    """The report as a table."""
    lines = [f"{'stream':<16} {'max age':>8} {'max bytes':>10} {'bytes':>11} {'messages':>9} {'subjects':>9}"]
    for row in report["streams"]:
        cap = _size(row["maxBytes"]) if row["maxBytes"] else "-"
        size = (
            (_size(row["bytes"]), str(row["messages"]), str(row["subjects"]))
            if row["exists"]
            else ("(missing)", "-", "-")
        )
        lines.append(f"{row['stream']:<16} {row['maxAge']:>8} {cap:>10} {size[0]:>11} {size[1]:>9} {size[2]:>9}")
    deleted = report["deletedConnectors"]
    lines.append(f"audit records are kept at least {report['auditMinAge']} (HUB_AUDIT_MIN_AGE)")
    lines.append(
        f"deleted connectors: restorable for {deleted['retention']} (HUB_DELETED_RETENTION), {deleted['kept']} kept"
    )
    return "\n".join(lines)


def _retention(run: Invocation) -> int:
    settings = run.settings

    async def main() -> dict[str, Any]:
        nc = await connect(settings, "connector-hub-cli")
        try:
            js = nc.jetstream()
            trash = Trash(await kv_bucket(js, TRASH_BUCKET, replicas=settings.stream_replicas))
            return await retention_report(nc, settings, trash)
        finally:
            await nc.close()

    report = asyncio.run(main())
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if run.args.json else render(report))
    return 0


RETENTION = Command(
    ("retention",),
    "each stream's retention and size, and how long deleted connectors stay restorable",
    _retention,
    lambda parser: parser.add_argument("--json", action="store_true", help="print JSON"),
)
