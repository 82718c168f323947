"""What a CLI verb is: one `Command` row (its words, help, arguments and handler), and how a
handler gets its settings. The parser and the dispatch both iterate the table of rows
(hub.cli.table), so a verb is declared once.

Every setting is an `HUB_*` environment variable and also a `--flag` (the flag wins); the flags are
generated from the Settings model so the two can never disagree.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from adapters.keyhosts import allow_key_hosts
from hub.app.logs import configure_logging
from hub.settings import Settings

ENVIRONMENT_ONLY = frozenset({"master_key", "signing_key"})
"""Keys are never command-line flags: a flag's value shows in `ps` and in shell history."""


class Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--master-key` must never be taken for `--master-key-file`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})


class Invocation:
    """One run of a verb: its parsed arguments, and the settings when the verb asks for them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    @cached_property
    def settings(self) -> Settings:
        """Settings from the environment and the flags; loading them also sets up logging and the
        key hosts the operator allows (so connectors are checked as `run` checks them)."""
        settings = load_settings(self.args)
        configure_logging(settings.log_level, settings.log_format)
        allow_key_hosts(settings.key_fetch_allowed_hosts)
        return settings


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A verb without arguments of its own."""


@dataclass(frozen=True, slots=True)
class Command:
    """One verb of `connector-hub`: `words` are its name (`("keys", "create")` is `keys create`)."""

    words: tuple[str, ...]
    help: str
    handler: Callable[[Invocation], int]
    arguments: Callable[[argparse.ArgumentParser], object] = field(default=_no_arguments)
    """Adds the verb's own arguments to its parser."""
    takes_settings: bool = True
    """Whether the verb reads settings (and so takes the settings flags)."""


def settings_flags() -> Parser:
    """A parent parser with one `--flag` per setting, grouped once under one heading."""
    parent = Parser(add_help=False)
    group = parent.add_argument_group("settings (each also HUB_<NAME> in the environment)")
    for name, model_field in Settings.model_fields.items():
        if name in ENVIRONMENT_ONLY:
            continue
        group.add_argument(
            f"--{name.replace('_', '-')}", dest=f"setting_{name}", metavar="VALUE", help=model_field.description
        )
    return parent


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by any `--flag` given."""
    overrides: dict[str, Any] = setting_flags(args)
    return Settings(**overrides)


def setting_flags(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as `--flag`s, by field name."""
    return {k.removeprefix("setting_"): v for k, v in vars(args).items() if k.startswith("setting_") and v}
