"""`connector-hub catalog`: every provider and poller with its type version, the version of its
options' schema, its lifecycle state and whether this hub serves it (HUB_DISABLED_PROVIDERS).

The rows are the registry's own declarations (adapters/lifecycle.py), as `GET /v1/catalog` lists them;
whether a type is enabled is read from this process's settings, which the hub's instances share.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from typing import Any

import orjson

from adapters.registry import catalog
from hub.cli.command import Command, Invocation

COLUMNS = ("KIND", "NAME", "VERSION", "OPTIONS", "LIFECYCLE", "ENABLED")


def catalog_entries(disabled: Collection[str]) -> list[dict[str, Any]]:
    """Every registered type's catalog entry on a hub that disables `disabled`."""
    return [info.to_dict(disabled) for info in catalog()]


def lifecycle_text(entry: dict[str, Any]) -> str:
    """`active`, or `deprecated since 2026-01-31, use x`, `retired since ...`."""
    if entry["lifecycle"] == "active":
        return "active"
    text = f"{entry['lifecycle']} since {entry['since']}"
    return text + (f", use {entry['replacement']}" if entry["replacement"] else "")


def render_table(entries: list[dict[str, Any]]) -> str:
    """The entries as aligned columns, a header first."""
    rows = [COLUMNS] + [
        (
            e["kind"],
            e["name"],
            e["typeVersion"],
            str(e["optionsVersion"]),
            lifecycle_text(e),
            "yes" if e["enabled"] else "no",
        )
        for e in entries
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (as GET /v1/catalog answers)")


def _catalog(run: Invocation) -> int:
    entries = catalog_entries(run.settings.disabled_providers)
    if run.args.json:
        print(orjson.dumps({"types": entries}, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_table(entries))
    return 0


CATALOG = Command(
    ("catalog",),
    "every provider and poller: type version, options version, lifecycle, enabled here",
    _catalog,
    _arguments,
)
