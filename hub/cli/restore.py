"""`restore TENANT/NAME` and `trash`: deleted connectors (hub/control/trash.py), as the operator,
directly on the running hub's bus. A restore is audited like the API's."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

import orjson

from events.subjects import is_name
from hub.cli.client import on_control_plane
from hub.cli.command import Command, Invocation
from hub.cli.control import EXIT_FAILED, split_target
from hub.control.plane import Actor, ControlPlane, RestoreConflict


def _checked(tenant: str, name: str | None = None) -> None:
    """SystemExit naming a tenant or connector name no connector can have (it would be a KV wildcard)."""
    for kind, value in (("tenant", tenant), ("connector", name)):
        if value is not None and not is_name(value):
            raise SystemExit(f"connector-hub: {value!r} is not a valid {kind} name ([a-z0-9-], 1-63)")


async def restore(plane: ControlPlane, tenant: str, name: str, retention: timedelta) -> int:
    """Bring back the connector's latest deletion, within `retention`."""
    target = f"{tenant}/{name}"
    try:
        restored = await plane.restore_connector(tenant, name, Actor.cli(), retention=retention)
    except RestoreConflict as exc:
        print(f"connector-hub: cannot restore {target}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if restored is None:
        print(f"connector-hub: no deleted connector {target} in the trash (never deleted, or purged)", file=sys.stderr)
        return EXIT_FAILED
    print(f"restored connector {target} (revision {restored.revision}, deleted at revision {restored.entry.revision})")
    if restored.entry.secrets:
        print(f"restored secrets: {', '.join(restored.entry.secret_names)}")
    return 0


async def list_trash(plane: ControlPlane, tenant: str | None, retention: timedelta, *, as_json: bool) -> int:
    """The deleted connectors kept, oldest first per connector."""
    rows = [entry.to_dict(retention) for entry in await plane.trash.entries(tenant)]
    if as_json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not rows:
        print("the trash is empty")
    for row in rows:
        secrets = f", secrets: {', '.join(row['secrets'])}" if row["secrets"] else ""
        print(
            f"{row['tenant']}/{row['name']}: revision {row['revision']}, deleted {row['deletedAt']} "
            f"by {row['deletedBy']}, restorable until {row['expiresAt']}{secrets}"
        )
    return 0


def _restore(run: Invocation) -> int:
    tenant, name = split_target(run.args.target)
    _checked(tenant, name)
    retention = run.settings.deleted_retention
    return on_control_plane(run.settings, lambda plane: restore(plane, tenant, name, retention))


def _trash(run: Invocation) -> int:
    args, retention = run.args, run.settings.deleted_retention
    if args.tenant is not None:
        _checked(args.tenant)
    return on_control_plane(run.settings, lambda plane: list_trash(plane, args.tenant, retention, as_json=args.json))


def _trash_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="only this tenant's deleted connectors")
    parser.add_argument("--json", action="store_true", help="print JSON")


COMMANDS = (
    Command(
        ("restore",),
        "bring a deleted connector back from the trash (within HUB_DELETED_RETENTION), with its secrets",
        _restore,
        lambda parser: parser.add_argument("target", metavar="TENANT/CONNECTOR"),
    ),
    Command(("trash",), "deleted connectors kept for restore, and until when", _trash, _trash_arguments),
)
