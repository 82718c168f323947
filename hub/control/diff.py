"""What an apply would change, field by field, between two spec documents (as JSON-like data)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

ABSENT: Any = object()
"""A field that exists on one side only."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed field: its path (`spec.routes[0].limits.maxParallel`), the value before and after."""

    path: str
    before: Any
    after: Any

    @property
    def operation(self) -> str:
        """`add`, `remove` or `change`."""
        if self.before is ABSENT:
            return "add"
        return "remove" if self.after is ABSENT else "change"

    def to_dict(self) -> dict[str, Any]:
        """JSON form; a side that does not exist is left out."""
        change: dict[str, Any] = {"path": self.path, "op": self.operation}
        if self.before is not ABSENT:
            change["before"] = self.before
        if self.after is not ABSENT:
            change["after"] = self.after
        return change

    def line(self) -> str:
        """`~ path: before -> after`, `+ path: after` or `- path: before`."""
        if self.before is ABSENT:
            return f"+ {self.path}: {_show(self.after)}"
        if self.after is ABSENT:
            return f"- {self.path}: {_show(self.before)}"
        return f"~ {self.path}: {_show(self.before)} -> {_show(self.after)}"


def diff(before: Any, after: Any) -> list[FieldChange]:
    """Every leaf that differs. Mappings are compared key by key and lists item by item, so a
    change deep in one route is reported at its own path rather than as a whole new list."""
    return list(_walk("", before, after))


def _walk(path: str, before: Any, after: Any) -> Iterator[FieldChange]:
    if before is ABSENT and isinstance(after, dict) and after:  # a new section: each of its fields is added
        before = {}
    if after is ABSENT and isinstance(before, dict) and before:
        after = {}
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [*before, *(k for k in after if k not in before)]:
            yield from _walk(f"{path}.{key}" if path else str(key), before.get(key, ABSENT), after.get(key, ABSENT))
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            yield from _walk(
                f"{path}[{index}]",
                before[index] if index < len(before) else ABSENT,
                after[index] if index < len(after) else ABSENT,
            )
    elif before != after or type(before) is not type(after):
        yield FieldChange(path or "(document)", before, after)


def _show(value: Any) -> str:
    return orjson.dumps(value).decode()
