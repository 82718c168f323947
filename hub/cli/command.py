"""What a CLI verb is: one `Command` row (its words, help, arguments and handler), and how a
handler gets its settings. The parser and the dispatch both iterate the table of rows
(hub.cli.table), so a verb is declared once.

Every setting is an `HUB_*` environment variable and also a `--flag` (the flag wins); the flags are
generated from the Settings model so the two can never disagree.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from adapters.keyhosts import allow_key_hosts
from hub.app.logs import configure_logging
from hub.settings import Settings

ENVIRONMENT_ONLY = frozenset({"master_key", "signing_key"})
"""Keys are never command-line flags: a flag's value shows in `ps` and in shell history."""


SETTING_PREFIX = "setting_"
"""The destination prefix of the settings' flags (`settings_flags`)."""


class UsageFormatter(argparse.HelpFormatter):
    """Usage lines with the verb's own arguments and one `[--SETTING VALUE ...]` for the thirty-odd
    settings flags, which the help lists once, under their own heading."""

    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        """The usage line with the settings' flags folded into one placeholder."""
        actions = list(actions)
        own = [action for action in actions if not action.dest.startswith(SETTING_PREFIX)]
        if len(own) < len(actions):
            own.insert(1 if own and own[0].option_strings[:1] == ["-h"] else 0, _SETTINGS_PLACEHOLDER)
        super().add_usage(usage, own, groups, prefix)


_SETTINGS_PLACEHOLDER = argparse.Action(option_strings=["--SETTING"], dest="settings", metavar="VALUE ...")


class Parser(argparse.ArgumentParser):
    """No abbreviated flags: `--master-key` must never be taken for `--master-key-file`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, "formatter_class": UsageFormatter, **kwargs})


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
            f"--{name.replace('_', '-')}",
            dest=f"{SETTING_PREFIX}{name}",
            metavar="VALUE",
            help=model_field.description,
        )
    return parent


def load_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by any `--flag` given."""
    overrides: dict[str, Any] = setting_flags(args)
    return Settings(**overrides)


def setting_flags(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as `--flag`s, by field name."""
    return {k.removeprefix(SETTING_PREFIX): v for k, v in vars(args).items() if k.startswith(SETTING_PREFIX) and v}
