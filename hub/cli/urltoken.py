"""`connector-hub url-token TENANT/CONNECTOR`: the signed ingress URL to give a sender that can only
be given a URL, for the connector as the running hub serves it (its key is a store secret of the
tenant), or from the spec files with `--connectors` or when no hub runs."""

from __future__ import annotations

import argparse
import sys

from adapters.webhooks.url_token import UrlTokenAdapter
from hub.cli.client import target_connector
from hub.cli.command import Command, Invocation
from hub.cli.sendtest import hook_url
from hub.errors import EXIT_USAGE


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TENANT/CONNECTOR")
    parser.add_argument("--base-url", help="the hub's public base URL (default: the running hub's)")


def _url_token(run: Invocation) -> int:
    settings, target = run.settings, run.args.target
    connector = target_connector(run, target)
    if connector.provider != UrlTokenAdapter.name:
        print(f"connector-hub: {target} is not a url-token connector", file=sys.stderr)
        return EXIT_USAGE
    print(hook_url(settings, connector, run.args.base_url))
    return 0


URL_TOKEN = Command(("url-token",), "issue the signed ingress URL of a url-token connector", _url_token, _arguments)
