"""`connector-hub send-test <tenant>/<connector>`: sign a sample (or a file) exactly as the provider
would and post it to a running hub, printing the answer."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp

from adapters.base import TestRequest
from adapters.webhooks.url_token import UrlTokenAdapter, issue_token
from hub.cli.client import hub_url, target_connector
from hub.cli.command import Command, Invocation
from hub.errors import ConfigError, Problem
from hub.ingest.connectors import Connector
from hub.settings import Settings


def signed_request(connector: Connector, payload: Path | None) -> TestRequest:
    """The request the provider would send to the connector, signed with its first listed secret."""
    now = time.time()
    sample = connector.adapter.sample(now)
    if payload is not None:
        sample = TestRequest(headers=sample.headers, body=payload.read_bytes())
    try:
        return connector.adapter.sign(sample, connector.secrets[0], now)
    except ValueError as exc:  # e.g. Discord: the connector holds a public key, which cannot sign
        raise ConfigError([Problem(connector.label, "spec.secrets[0]", f"cannot sign a test request: {exc}")]) from None


def hook_url(settings: Settings, connector: Connector, base_url: str | None) -> str:
    """Where a connector receives webhooks; a url-token connector's URL carries its token (its first secret)."""
    url = f"{(base_url or hub_url(settings)).rstrip('/')}/hooks/{connector.tenant}/{connector.name}"
    if connector.provider == UrlTokenAdapter.name:
        url += "?token=" + issue_token(connector.secrets[0].value, connector.tenant, connector.name)
    return url


async def send_test(settings: Settings, connector: Connector, payload: Path | None, base_url: str | None) -> int:
    """Post the signed request; prints the status and body; 0 on a 2xx answer."""
    request = signed_request(connector, payload)
    url = hook_url(settings, connector, base_url)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(url, data=request.body, headers=request.headers, allow_redirects=False) as response,
        ):
            print(f"POST {url.split('?')[0]} -> {response.status}")  # a url-token URL is a credential
            print(await response.text())
            return 0 if 200 <= response.status < 300 else 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        print(f"connector-hub: cannot reach the hub at {url}: {type(exc).__name__}", file=sys.stderr)
        return 2


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TENANT/CONNECTOR")
    parser.add_argument("--file", type=Path, help="payload to send instead of the provider's sample")
    parser.add_argument("--url", help="hub base URL (default: the running hub's, else --http-host/--http-port)")


def _send_test(run: Invocation) -> int:
    connector = target_connector(run, run.args.target)
    return asyncio.run(send_test(run.settings, connector, run.args.file, run.args.url))


SEND_TEST = Command(
    ("send-test",),
    "sign a sample as the provider would and post it",
    lambda run: asyncio.run(
        send_test(run.settings, target_connector(run, run.args.target), run.args.file, run.args.url)
    ),
    _arguments,
)
