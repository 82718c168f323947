"""`connector-hub policy explain`: what the policy consumer would do with one event, route by route."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hub.gate.catalog import CompiledRoute, GateCatalog
from hub.gate.conditions import CONDITION_ERROR, route_decision
from hub.gate.policy import Decision


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    """One route's verdict: matched or why not, and the decision when matched."""

    route: str
    target: str
    matched: bool
    why: str
    decision: Decision | None

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        decision = self.decision
        return {
            "route": self.route,
            "target": self.target,
            "matched": self.matched,
            "why": self.why,
            "allowed": decision.allowed if decision else None,
            "rule": decision.rule if decision else None,
            "reason": decision.reason if decision else None,
        }

    def line(self) -> str:
        """One human-readable line."""
        head = f"route {self.route} -> {self.target}: "
        if self.decision is None:
            return head + f"not matched ({self.why})"
        verdict = "ALLOWED" if self.decision.allowed else "DENIED"
        return head + f"matched ({self.why}); {verdict} by {self.decision.rule}: {self.decision.reason}"


class ExplainError(ValueError):
    """The event file or the connector cannot be explained; the message says why."""


def read_event(path: Path) -> dict[str, Any]:
    """The envelope in `path` (JSON, as `connector-hub tail` prints it)."""
    try:
        event = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ExplainError(f"{path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ExplainError(f"{path}: not JSON: {exc}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ExplainError(f"{path}: not an event envelope: it needs a string `type`")
    return event


def explain(catalog: GateCatalog, tenant: str, connector: str, event: Mapping[str, Any]) -> list[RouteExplanation]:
    """Every route of the connector, matched or not, with its decision."""
    found = catalog.connector(tenant, connector)
    if found is None:
        raise ExplainError(f"no enabled connector {tenant}/{connector} in the specs")
    event_type = str(event["type"])
    return [_explain_route(catalog, route, event_type, event) for route in found.routes]


def _explain_route(
    catalog: GateCatalog, route: CompiledRoute, event_type: str, event: Mapping[str, Any]
) -> RouteExplanation:
    target = route.spec.target.label
    types = ", ".join(route.spec.match.types)
    if not route.fits_type(event_type):
        return RouteExplanation(route.name, target, False, f"type {event_type} fits none of [{types}]", None)
    decision = route_decision(catalog.policy(route.tenant), route, event_type, event)
    if decision is None:
        why = f"type fits, but the condition `{route.spec.match.when}` is not true for this event"
        return RouteExplanation(route.name, target, False, why, None)
    if decision.rule == CONDITION_ERROR:
        why = f"type {event_type} fits [{types}], but an expression of the route exceeded its evaluation budget"
        return RouteExplanation(route.name, target, True, why, decision)
    why = f"type {event_type} fits [{types}]" + (f" and `{route.spec.match.when}` holds" if route.condition else "")
    return RouteExplanation(route.name, target, True, why, decision)
