"""`connector-hub policy explain`: for each route of a connector, whether an event matches it and
whether the tenant's Policy allows it, and why (the logic is the gate's own: hub.gate.explain), for
what the running hub applies, or for the spec files with `--connectors` or when no hub runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from hub.cli.client import deployed_catalog, reads_deployed
from hub.cli.command import Command, Invocation
from hub.errors import EXIT_USAGE
from hub.gate.catalog import build_catalog
from hub.gate.explain import ExplainError, explain, read_event
from schemas.loader import load_specs


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connector", required=True, metavar="TENANT/CONNECTOR")
    parser.add_argument("--event", required=True, type=Path, metavar="FILE", help="an event envelope (JSON)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")


def _explain(run: Invocation) -> int:
    settings, target = run.settings, run.args.connector
    if reads_deployed(run):
        catalog = asyncio.run(deployed_catalog(settings))  # the routes and Policy the running hub applies
    elif settings.connectors is None:
        print("connector-hub: no hub runs: set HUB_CONNECTORS (or --connectors) to the spec files", file=sys.stderr)
        return EXIT_USAGE
    else:
        catalog = build_catalog(load_specs(settings.connectors))
    tenant, _, name = target.partition("/")
    try:
        explanations = explain(catalog, tenant, name, read_event(run.args.event))
    except ExplainError as exc:
        print(f"connector-hub: {exc}", file=sys.stderr)
        return 1
    if run.args.json:
        print(orjson.dumps([e.to_dict() for e in explanations], option=orjson.OPT_INDENT_2).decode())
        return 0
    if not explanations:
        print(f"{target} has no routes")
    for explanation in explanations:
        print(explanation.line())
    return 0


POLICY_EXPLAIN = Command(
    ("policy", "explain"),
    "for each route of a connector: matched or not, allowed or denied, and why",
    _explain,
    _arguments,
)
