"""The `connector-hub` command line, built from the table of verbs (hub.cli.table), and its entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from pydantic import ValidationError

from hub.app.embedded import EmbeddedServerError
from hub.cli.command import Command, Invocation, Parser, settings_flags
from hub.cli.table import COMMANDS, GROUPS
from hub.errors import EXIT_USAGE, ConfigError
from schemas.loader import SpecLoadError, field_path

DESCRIPTION = (
    "The connector hub: verify webhooks and poll APIs, publish the events on NATS JetStream, gate what they "
    "invoke. `connector-hub VERB --help` describes each verb."
)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per row of the table (two-word verbs under their first word)."""
    parser = Parser(prog="connector-hub", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"connector-hub {version('connector-hub')}")
    verbs = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="VERB")
    settings = settings_flags()
    groups: dict[str, Any] = {}
    for command in COMMANDS:
        first, *rest = command.words
        parents = [settings] if command.takes_settings else []
        if not rest:
            verb = verbs.add_parser(first, parents=parents, help=command.help, description=command.help)
        else:
            if first not in groups:
                group = verbs.add_parser(first, help=GROUPS[first], description=GROUPS[first])
                groups[first] = group.add_subparsers(dest=f"{first}_command", required=True, metavar="VERB")
            verb = groups[first].add_parser(rest[0], parents=parents, help=command.help, description=command.help)
        command.arguments(verb)
        verb.set_defaults(verb=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    command: Command = args.verb
    try:
        return command.handler(Invocation(args))
    except ValidationError as exc:
        for error in exc.errors():
            print(f"connector-hub: setting {field_path(error['loc'])}: {error['msg']}", file=sys.stderr)
    except ConfigError as exc:
        print("connector-hub: configuration error:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
    except SpecLoadError as exc:
        for spec_error in exc.errors:
            print(f"connector-hub: {spec_error}", file=sys.stderr)
    except EmbeddedServerError as exc:
        print(f"connector-hub: embedded {exc.server} failed: {exc.reason}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `connector-hub providers | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return EXIT_USAGE
