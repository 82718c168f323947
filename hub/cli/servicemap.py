"""`connector-hub service-map verify [FILE]`: check a signed service map as a consumer would."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

from events.envelope import rfc3339
from hub.cli.command import Command, Invocation
from hub.control.servicemap import ServiceMapError, generated_at, verify_service_map


def service_map_cli(path: Path | None, signing_key: str | None) -> int:
    """`connector-hub service-map verify [FILE]`: verify the map in FILE (stdin when None)."""
    if not signing_key:
        print("connector-hub: set HUB_SIGNING_KEY to the key the service map was signed with", file=sys.stderr)
        return 2
    try:
        raw = sys.stdin.buffer.read() if path is None else path.read_bytes()
    except OSError as exc:
        print(f"connector-hub: {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        verified = verify_service_map(raw, signing_key)
    except ServiceMapError as exc:
        print(f"connector-hub: service map {exc.reason}: {exc}", file=sys.stderr)
        return 1
    expires = generated_at(verified) + timedelta(seconds=verified["ttlSeconds"])
    print(
        f"service map of tenant {verified['tenant']} verified: "
        f"{len(verified['connectors'])} connector(s), expires at {rfc3339(expires)}"
    )
    return 0


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="the map (default: stdin)")


def _verify(run: Invocation) -> int:
    key = run.settings.signing_key
    return service_map_cli(run.args.file, key.get_secret_value() if key else None)


SERVICE_MAP_VERIFY = Command(("service-map", "verify"), "check a map's signature and expiry", _verify, _arguments)
