"""The fields that choose stored events (tenant, connector, type glob, time range, event id), shared
by the Events page's filters and the Replay page's form, and how a form's values are read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SelectionFields:
    """The fields as typed ('' when empty); the history reader and the replay request check them."""

    tenant: str = ""
    connector: str = ""
    type: str = ""
    since: str = ""
    until: str = ""
    id: str = ""


def typed_values(source: Mapping[str, Any], names: Iterable[str], max_chars: int) -> dict[str, str]:
    """Each named value as typed: stripped and cut to `max_chars`; '' when missing or not text (a
    file part of a multipart form)."""
    values = {name: source.get(name, "") for name in names}
    return {name: value.strip()[:max_chars] if isinstance(value, str) else "" for name, value in values.items()}
