"""`connector-hub replay`: a dry run of stored events (how many match; through the gate, what the
policy decides now per route), a confirmation unless `--yes`, then the replay as a job, followed
until it ends. The hub's job runners (processes with the admin role) send it; the decision uses the
catalog as deployed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from hub.cli.client import deployed_catalog
from hub.cli.command import Command, Invocation
from hub.cli.jobs import Bus, bus, follow, on_bus
from hub.gate.catalog import GateCatalog, catalog_of
from hub.jobs import replay
from hub.jobs.selection import SelectionError


def request_of(args: argparse.Namespace) -> replay.ReplayRequest:
    """The replay the flags describe; SystemExit naming a wrong flag."""
    fields: dict[str, Any] = {
        "tenant": args.tenant,
        "connector": args.connector,
        "type": args.type,
        "subject": args.subject,
        "eventId": args.event_id,
        "since": args.since,
        "until": args.until,
    }
    body = {
        "selection": {k: v for k, v in fields.items() if v is not None},
        "mode": "subject" if args.to_subject else "gate",
    }
    try:
        return replay.ReplayRequest.parse(body)
    except SelectionError as exc:
        raise SystemExit(f"connector-hub replay: --{exc.field.replace('eventId', 'event-id')}: {exc}") from None


def print_dry_run(summary: dict[str, Any]) -> None:
    """The dry run as people read it."""
    target = "through the gate" if summary["mode"] == "gate" else "to the shadow subject (hub.replay.>)"
    print(f"{summary['events']} event(s) match; they would be replayed {target}")
    for row in summary.get("decisions", []):
        print(f"  route {row['route']}: {row['effect']} by rule {row['rule']}: {row['count']}")
    if summary.get("unrouted"):
        print(f"  {summary['unrouted']} event(s) match no route of the current catalog")


def _replay(run: Invocation) -> int:
    request = request_of(run.args)
    catalog: GateCatalog = catalog_of([], [])  # a replay to the subject decides nothing
    if request.mode == "gate":
        catalog = asyncio.run(deployed_catalog(run.settings))

    async def dry_run() -> dict[str, Any]:
        async with bus(run.settings) as connected:
            return await replay.dry_run(connected.nc, catalog, request)

    summary = asyncio.run(dry_run())
    if run.args.json:
        print(orjson.dumps(summary).decode())
    else:
        print_dry_run(summary)
    if run.args.dry_run or summary["events"] == 0:
        return 0
    if not run.args.yes and input("start the replay? [y/N] ").strip().lower() not in ("y", "yes"):
        print("not started", file=sys.stderr)
        return 1

    async def start(connected: Bus) -> int:
        job = await replay.start(connected.jobs, request, created_by=connected.actor.key_id)
        await connected.audit(job.tenant, "replay_start", f"job/{job.id}", "accepted", **request.params())
        print(f"job {job.id}")
        return 0 if run.args.no_follow else await follow(connected.jobs, job.id)

    return on_bus(run.settings, start)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant's events")
    parser.add_argument("--connector", help="only this connector's events")
    parser.add_argument("--type", help="event type glob, e.g. 'pull_request.*'")
    parser.add_argument("--subject", help="CloudEvents subject glob")
    parser.add_argument("--event-id", help="one event (with --tenant and --connector)")
    parser.add_argument("--since", help="stored at or after this RFC 3339 time")
    parser.add_argument("--until", help="stored at or before this RFC 3339 time")
    parser.add_argument("--to-subject", action="store_true", help="replay to hub.replay.> instead of the gate")
    parser.add_argument("--dry-run", action="store_true", help="only show what would be replayed")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--no-follow", action="store_true", help="start the job and return")
    parser.add_argument("--json", action="store_true", help="print the dry run as JSON")


REPLAY = Command(("replay",), "replay stored events through the gate or to a shadow subject", _replay, _arguments)
