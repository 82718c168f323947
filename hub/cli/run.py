"""`connector-hub run`: serve the hub's roles in this process, or in `--workers N` processes under a
supervisor."""

from __future__ import annotations

import argparse
import sys

from hub.admin.auth import is_loopback_host
from hub.app import workers
from hub.app.config import ROLES
from hub.app.datadir import DataDirInUse
from hub.cli.command import Command, Invocation, setting_flags
from hub.errors import EXIT_USAGE


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--role",
        default=",".join(ROLES),
        help=f"comma-separated subset of: {', '.join(ROLES)} (default: all)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve the admin API without API keys (development only: HUB_ADMIN_HOST must be a loopback "
        "address; warns at start and on /readyz)",
    )


def _run(run: Invocation) -> int:
    args, settings = run.args, run.settings
    roles = [role.strip() for role in args.role.split(",") if role.strip()]
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        print(f"connector-hub: unknown role(s): {', '.join(sorted(unknown)) or '(none given)'}", file=sys.stderr)
        return EXIT_USAGE
    if args.insecure_no_auth and not is_loopback_host(settings.admin_host):
        print(
            f"connector-hub: --insecure-no-auth needs the admin API on a loopback address: HUB_ADMIN_HOST is "
            f"{settings.admin_host!r} (use 127.0.0.1, ::1 or localhost)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        return workers.run(settings, roles, setting_flags(args), insecure_no_auth=args.insecure_no_auth)
    except DataDirInUse as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return EXIT_USAGE


RUN = Command(("run",), "run the hub (embedded NATS and Valkey unless URLs are set)", _run, _arguments)
