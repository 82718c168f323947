"""Dotted-name patterns, as NATS subjects spell them: `*` is exactly one token, a final `>` one or more.

Event types (`github.pull_request.opened`), target subjects and policy rules all use them, so a
user learns one syntax. A `*` inside a token (`pull_*`) is not a wildcard and is refused, so a
pattern never looks broader or narrower than it is.
"""

from __future__ import annotations

import re
from functools import lru_cache

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def check_pattern(pattern: str) -> str:
    """The pattern if well formed, else ValueError saying what is wrong."""
    names = pattern.split(".")
    for index, part in enumerate(names):
        if part == "*" or (part == ">" and index == len(names) - 1):
            continue
        if part == ">":
            raise ValueError(f"{pattern!r}: `>` may only be the last token")
        if not _TOKEN.fullmatch(part):
            raise ValueError(f"{pattern!r}: token {part!r} must be `*`, a final `>`, or letters, digits, `_` and `-`")
    return pattern


def matches(pattern: str, name: str) -> bool:
    """Whether the dotted `name` fits `pattern`."""
    return _compiled(pattern).fullmatch(name) is not None


def is_within(name: str, prefix: str) -> bool:
    """Whether `name` is `prefix` itself or below it, token-wise (`svc.a` is within `svc`, `svcx` is not)."""
    return name == prefix or name.startswith(prefix + ".")


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = []
    for part in pattern.split("."):
        if part == "*":
            parts.append(r"[^.]+")
        elif part == ">":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(part))
    return re.compile(r"\.".join(parts))
