"""`docs/providers.md` and `connector-hub providers`, generated from the registry so they cannot drift.

Every fact comes from the adapters' own `SchemeInfo` declarations; a test fails when the checked-in
page differs from what the registry renders (`connector-hub providers --write` regenerates it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from adapters.base import SchemeInfo
from adapters.lifecycle import TypeInfo
from adapters.registry import POLLERS, WEBHOOK_PROVIDERS, type_info
from hub.cli.command import Command, Invocation

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "providers.md"
DEFAULT_REPLAY_WINDOW_S = 300.0


def provider_facts() -> list[dict[str, Any]]:
    """One record per registered webhook provider, sorted by name."""
    return [_facts(name, cls.scheme, type_info("provider", cls)) for name, cls in sorted(WEBHOOK_PROVIDERS.items())]


def _facts(name: str, scheme: SchemeInfo, info: TypeInfo) -> dict[str, Any]:
    return {
        "provider": name,
        "typeVersion": str(info.version),
        "optionsVersion": info.options_version,
        "lifecycle": lifecycle_text(info),
        "signatureHeader": scheme.signature_header,
        "algorithm": scheme.algorithm,
        "signedContent": scheme.signed_content,
        "encoding": scheme.encoding,
        "timestamp": scheme.timestamp,
        "replayWindowS": scheme.default_replay_window_s or DEFAULT_REPLAY_WINDOW_S,
        "dedupeKey": scheme.dedupe_key,
        "replayProtection": replay_protection(scheme),
        "handshake": scheme.handshake,
        "deliveryTimeoutS": scheme.delivery_timeout_s,
        "acceptedStatus": scheme.accepted_status,
        "duplicateStatus": scheme.duplicate_status,
    }


def lifecycle_text(info: TypeInfo) -> str:
    """`active`, or the state with its date and replacement (`deprecated since 2026-01-31, use x`)."""
    lifecycle = info.lifecycle
    if lifecycle.since is None:
        return lifecycle.state
    return f"{lifecycle.state} since {lifecycle.since.isoformat()}" + (
        f", use `{lifecycle.replacement}`" if lifecycle.replacement else ""
    )


def replay_protection(scheme: SchemeInfo) -> str:
    """What stops a captured request from being accepted again."""
    if scheme.replay_protection is not None:
        return scheme.replay_protection
    if scheme.timestamp is not None:
        return "signed timestamp inside the replay window, then the dedupe key"
    if scheme.dedupe_key_signed:
        return "no signed timestamp: the dedupe key, which is signed"
    return "no signed timestamp: the dedupe key (not signed) and the signature bytes"


def render_markdown() -> str:
    """The whole `docs/providers.md`."""
    lines = [
        "# Providers",
        "",
        "Generated from the adapters' own declarations by `connector-hub providers --write`; a test",
        "fails when this page and the registry disagree. Every connector's requests are verified with",
        "that connector's own secrets only; every listed secret is tried (rotation).",
        "",
        "The success status is what the hub answers once a delivery is published, then for a duplicate:",
        "the code the provider counts as delivered (202 where any 2xx is).",
        "",
        "The version is the type's semver (a spec may pin it in `spec.typeVersion`), then the version of",
        "its options' schema and its lifecycle; `connector-hub catalog` also says which types this hub",
        "serves (HUB_DISABLED_PROVIDERS).",
        "",
        "| provider | version | signature | signed content | timestamp | replay protection | dedupe key "
        "| handshake | success status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for facts in provider_facts():
        timestamp = facts["timestamp"] or "none"
        if facts["timestamp"]:
            timestamp += f" (window {facts['replayWindowS']:g} s)"
        lines.append(
            "| `{provider}` | {typeVersion} (options {optionsVersion}), {lifecycle} "
            "| {signatureHeader}: {algorithm}, {encoding} | {signedContent} | {timestamp} | "
            "{replayProtection} | {dedupeKey} | {handshake} | {acceptedStatus} (duplicate {duplicateStatus}) |".format(
                **{**facts, "timestamp": timestamp, "handshake": facts["handshake"] or "none"}
            )
        )
    lines += ["", "## Pollers", ""]
    for name, cls in sorted(POLLERS.items()):
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        info = type_info("poller", cls)
        lines.append(f"- `{name}` {info.version} (options {info.options_version}), {lifecycle_text(info)}: {summary}")
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"


def drifted(path: Path = DOC_PATH) -> bool:
    """Whether the checked-in page differs from the registry's."""
    return not path.is_file() or path.read_text() != render_markdown()


def _arguments(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--write", action="store_true", help="regenerate docs/providers.md")
    output.add_argument("--check", action="store_true", help="exit 1 if docs/providers.md is out of date")


def _providers(run: Invocation) -> int:
    args = run.args
    if args.check:
        if drifted():
            print(f"{DOC_PATH} is out of date: run `connector-hub providers --write`", file=sys.stderr)
            return 1
        return 0
    if args.write:
        DOC_PATH.write_text(render_markdown())
        print(f"wrote {DOC_PATH}")
    elif args.json:
        print(orjson.dumps(provider_facts(), option=orjson.OPT_INDENT_2).decode())
    else:
        for facts in provider_facts():
            print(f"{facts['provider']:<18} {facts['signatureHeader']}")
            print(f"{'':<18} timestamp: {facts['timestamp'] or 'none'}; replay: {facts['replayProtection']}")
    return 0


PROVIDERS = Command(
    ("providers",),
    "the webhook providers and pollers, with their signing facts",
    _providers,
    _arguments,
    takes_settings=False,
)
