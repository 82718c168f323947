"""Audit records on `hub.audit.<tenant>.<action>`: who decided what about which target, and how it ended.

One record per decision worth keeping (a denied invocation today; API calls and changes later),
as JSON. Records never carry secrets or signatures: only names, ids and outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action."""

    tenant: str
    action: str
    target: str
    outcome: str
    time: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    key_id: str | None = None
    duration_ms: float | None = None

    def to_json(self) -> bytes:
        """The record as a JSON object (unset optional fields left out)."""
        record: dict[str, Any] = {
            "tenant": self.tenant,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "time": self.time,
            "detail": dict(self.detail),
        }
        for name in ("request_id", "key_id", "duration_ms"):
            value = getattr(self, name)
            if value is not None:
                record[_camel(name)] = value
        return orjson.dumps(record)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)
