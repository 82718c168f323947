"""`connector-hub` (also `python -m hub`): the CLI layer. Each verb is a module here with its
`Command` row; hub.cli.table lists them, hub.cli.parser builds the command line from that table."""

from hub.cli.command import load_settings
from hub.cli.parser import build_parser, main

__all__ = ["build_parser", "load_settings", "main"]
