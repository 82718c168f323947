"""`docs/providers.md` and `connector-hub providers`, generated from the registry so they cannot drift.

Every fact comes from the adapters' own `SchemeInfo` declarations; a test fails when the checked-in
page differs from what the registry renders (`connector-hub providers --write` regenerates it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.base import SchemeInfo
from adapters.registry import POLLERS, WEBHOOK_PROVIDERS

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "providers.md"
DEFAULT_REPLAY_WINDOW_S = 300.0


def provider_facts() -> list[dict[str, Any]]:
    """One record per registered webhook provider, sorted by name."""
    return [_facts(name, cls.scheme) for name, cls in sorted(WEBHOOK_PROVIDERS.items())]


def _facts(name: str, scheme: SchemeInfo) -> dict[str, Any]:
    return {
        "provider": name,
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
    }


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
        "| provider | signature | signed content | timestamp | replay protection | dedupe key | handshake |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for facts in provider_facts():
        timestamp = facts["timestamp"] or "none"
        if facts["timestamp"]:
            timestamp += f" (window {facts['replayWindowS']:g} s)"
        lines.append(
            "| `{provider}` | {signatureHeader}: {algorithm}, {encoding} | {signedContent} | {timestamp} | "
            "{replayProtection} | {dedupeKey} | {handshake} |".format(
                **{**facts, "timestamp": timestamp, "handshake": facts["handshake"] or "none"}
            )
        )
    lines += ["", "## Pollers", ""]
    for name, cls in sorted(POLLERS.items()):
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        lines.append(f"- `{name}`: {summary}")
    return "\n".join(line.replace("\n", " ") for line in lines) + "\n"


def drifted(path: Path = DOC_PATH) -> bool:
    """Whether the checked-in page differs from the registry's."""
    return not path.is_file() or path.read_text() != render_markdown()
