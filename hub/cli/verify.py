"""`connector-hub verify TENANT/CONNECTOR --headers FILE --body FILE [--at TIME]`: why a captured
request fails (or passes) verification, step by step, without printing a secret or a signature.

The request is checked exactly as the ingress checks it: the connector's own secrets from its spec
(every one, for rotation), the provider's scheme, then the replay window at `--at` (default now),
then the handshake and the events it would carry.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import orjson

from adapters.base import InboundRequest
from adapters.errors import PayloadError, ReplayWindowError, SignatureError
from hub.cli.client import target_connector
from hub.cli.command import Command, Invocation
from hub.errors import EXIT_USAGE, ConfigError, Problem
from hub.ingest.connectors import Connector
from hub.ingress.handler import check_replay_window

NO_MATCH_HINT = (
    "hint: the header is well formed but no secret reproduces it: either none of the listed secrets is the one "
    "the provider used, or the signed content differs from what it signed (a proxy re-encoding the body, a body "
    "saved with a changed line ending, another URL for providers that sign the URL: see --url)"
)


@dataclass(frozen=True, slots=True)
class Captured:
    """A request as captured from a sender (or a proxy's log)."""

    headers: list[tuple[str, str]]
    body: bytes
    url: str
    method: str


def read_headers(path: Path) -> list[tuple[str, str]]:
    """A JSON object of headers, or `Name: value` lines (as curl -D or a proxy log prints them)."""
    text = path.read_text()
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        return [(str(k), str(v)) for k, v in parsed.items()]
    headers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith(("HTTP/", "POST ", "GET ")):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConfigError([Problem("", f"{path}:{number}", "not a `Name: value` header line")])
        headers.append((name.strip(), value.strip()))
    return headers


def parse_at(value: str | None) -> float:
    """`--at`: epoch seconds, RFC 3339, or now."""
    if value is None:
        return time.time()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ConfigError([Problem("", "--at", f"{value!r} is neither epoch seconds nor RFC 3339")]) from None


def explain_verification(connector: Connector, captured: Captured, at: float) -> tuple[bool, list[str]]:
    """(verified, the lines that say why), for the connector as the hub would check it."""
    target = connector.label
    request = InboundRequest(
        method=captured.method,
        url=captured.url,
        headers=captured.headers,
        body=captured.body,
        received_at=at,
        query=dict(parse_qsl(urlsplit(captured.url).query)),
    )
    lines = [
        f"connector {target}: provider {connector.provider}, {len(connector.secrets)} secret(s): "
        + ", ".join(s.key_id for s in connector.secrets),
        f"scheme: {connector.adapter.scheme.signature_header}, {connector.adapter.scheme.algorithm}",
    ]
    try:
        verification = connector.verify(request)
    except SignatureError as exc:
        lines.append(f"FAILED signature: {exc.reason}" + (f" ({exc.detail})" if exc.detail else ""))
        if exc.reason == "no_match":
            lines.append(NO_MATCH_HINT)
        return False, lines
    lines.append(f"signature: OK, matched secret {verification.key_id} ({verification.scheme})")
    if verification.signed_at is None:
        lines.append("timestamp: the provider signs none (replay protection rests on the dedupe key)")
    else:
        try:
            check_replay_window(verification.signed_at, at, connector.replay_window_s)
        except ReplayWindowError as exc:
            return False, [*lines, f"FAILED replay window: {exc.detail}"]
        age_s = at - verification.signed_at
        when = f"{age_s:.0f}s old" if age_s >= 0 else f"{-age_s:.0f}s in the future"
        lines.append(f"timestamp: {when} at --at, inside the {connector.replay_window_s:.0f}s window")
    try:
        if (reply := connector.handshake(request)) is not None:
            return True, [*lines, f"handshake: answered {reply.status} {reply.content_type}"]
        events = connector.adapter.normalize(request)
    except PayloadError as exc:
        return False, [*lines, f"FAILED payload: {exc.reason}" + (f" ({exc.detail})" if exc.detail else "")]
    lines += [f"event: {event.type} id {event.id}" for event in events]
    return True, lines


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TENANT/CONNECTOR")
    parser.add_argument("--headers", required=True, type=Path, metavar="FILE", help="JSON object or Name: value lines")
    parser.add_argument("--body", required=True, type=Path, metavar="FILE", help="the raw body, byte for byte")
    parser.add_argument("--at", metavar="TIME", help="when it was received: epoch seconds or RFC 3339 (default: now)")
    parser.add_argument(
        "--url", default="http://hub.invalid/hooks", help="the URL the provider signed, if it signs one"
    )
    parser.add_argument("--method", default="POST", help="the request's method (default: POST)")


def _verify(run: Invocation) -> int:
    args = run.args
    try:
        captured = Captured(read_headers(args.headers), args.body.read_bytes(), args.url, args.method.upper())
    except OSError as exc:
        print(f"connector-hub: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    verified, lines = explain_verification(target_connector(run, args.target), captured, parse_at(args.at))
    for line in lines:
        print(line)
    return 0 if verified else 1


VERIFY = Command(("verify",), "say why a captured request fails (or passes) verification", _verify, _arguments)
