"""What the gate consumers know: each enabled connector's routes, compiled, and each tenant's policy.

Built from validated specs. JMESPath conditions and debounce keys are compiled once here, so an
event costs one evaluation, and the type patterns of a route are checked on the event's type
before anything parses the envelope. Tenants write those expressions, so each evaluation runs
within a budget (`schemas.bounded_jmespath`): one that costs more raises `ConditionError`, which
the policy consumer turns into a `(condition_error)` denial instead of stalling the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson
from jmespath.exceptions import JMESPathError

from schemas.bounded_jmespath import BoundedExpression, BudgetExceeded
from schemas.connector import ConnectorDocument, Route
from schemas.loader import LoadedSpecs
from schemas.patterns import matches
from schemas.policy import PolicyDocument, PolicySpec


class ConditionError(Exception):
    """A route's `match.when` or `debounce.key` exceeded its evaluation budget on an event; the message
    names the field and the bound."""


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """One route of one connector, ready to match events."""

    tenant: str
    connector: str
    provider: str
    spec: Route
    condition: BoundedExpression | None
    debounce_key: BoundedExpression | None

    @property
    def name(self) -> str:
        """The route's name."""
        return self.spec.name

    @property
    def label(self) -> str:
        """`tenant/connector/route`, for logs and limiter keys."""
        return f"{self.tenant}/{self.connector}/{self.spec.name}"

    def fits_type(self, event_type: str) -> bool:
        """Whether the event type matches one of the route's type patterns."""
        return any(matches(pattern, event_type) for pattern in self.spec.match.types)

    def fits_condition(self, envelope: Mapping[str, Any]) -> bool:
        """Whether the `when` condition (if any) is truthy over the envelope (JMESPath truthiness).

        A condition that fails on this event (a function given the wrong type, e.g. `contains()` of
        a missing field, or `>` between a string and a number) is false for it: the event is not
        the route's, and it must not be held up. One that exceeds its evaluation budget raises
        `ConditionError`: that is the tenant's expression, not the event, and it is audited.
        """
        if self.condition is None:
            return True
        try:
            return _truthy(self.condition.search(envelope))
        except _EVALUATION_ERRORS:
            return False
        except BudgetExceeded as exc:
            raise ConditionError(f"match.when exceeded its evaluation budget: {exc}") from None

    def debounce_value(self, envelope: Mapping[str, Any], *, strict: bool = False) -> str | None:
        """The debounce key of this event, or None when the route does not debounce it (also when
        the key expression fails on this event, or exceeds its evaluation budget).

        `strict` raises `ConditionError` for a key over its budget instead: the policy consumer
        denies such an event, so the dispatcher (not strict) meets one only if the deadline, rather
        than the deterministic unit budget, stopped the key under load, and then does not debounce.
        """
        if self.debounce_key is None:
            return None
        try:
            value = self.debounce_key.search(envelope, sized=True)  # sized: the value is serialized
            if value is None:
                return None
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()  # JSON keeps "1" and 1 apart
        except _EVALUATION_ERRORS:  # also orjson's, for a value nested deeper than it serializes
            return None
        except BudgetExceeded as exc:
            if strict:
                raise ConditionError(f"debounce.key exceeded its evaluation budget: {exc}") from None
            return None


_EVALUATION_ERRORS = (JMESPathError, TypeError, ValueError)
"""What evaluating a valid expression can raise on an unexpected event (jmespath raises a plain
TypeError when ordering a string against a number). Exceeding the evaluation budget is not among
them: `BudgetExceeded` is the expression's doing, whatever the event, and becomes `ConditionError`."""


def _truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty strings, lists and objects are false; 0 is true."""
    return value is not None and value is not False and value != "" and value != [] and value != {}


@dataclass(frozen=True, slots=True)
class ConnectorRoutes:
    """An enabled connector's routes."""

    tenant: str
    name: str
    provider: str
    routes: tuple[CompiledRoute, ...]

    def route(self, name: str) -> CompiledRoute | None:
        """The route with that name, or None."""
        return next((route for route in self.routes if route.name == name), None)


class GateCatalog:
    """Routes by connector and policies by tenant; read-only once built."""

    def __init__(self, connectors: Iterable[ConnectorRoutes], policies: Mapping[str, PolicySpec]) -> None:
        self._connectors = MappingProxyType({(c.tenant, c.name): c for c in connectors})
        self._policies = MappingProxyType(dict(policies))

    def connector(self, tenant: str, name: str) -> ConnectorRoutes | None:
        """The enabled connector, or None (unknown, deleted or disabled)."""
        return self._connectors.get((tenant, name))

    def route(self, tenant: str, connector: str, route: str) -> CompiledRoute | None:
        """One route, or None."""
        found = self._connectors.get((tenant, connector))
        return found.route(route) if found else None

    def policy(self, tenant: str) -> PolicySpec | None:
        """The tenant's policy, or None (then every route of the tenant is denied)."""
        return self._policies.get(tenant)

    @property
    def has_routes(self) -> bool:
        """Whether any connector has a route (else the gate consumers have nothing to do)."""
        return any(c.routes for c in self._connectors.values())

    def tenants_without_policy(self) -> list[str]:
        """Tenants with routes but no Policy document: all their routes are denied."""
        return sorted({c.tenant for c in self._connectors.values() if c.routes and c.tenant not in self._policies})


def compile_route(tenant: str, connector: str, provider: str, route: Route) -> CompiledRoute:
    """A route with its expressions compiled (they were validated when the spec was loaded)."""
    debounce = route.debounce
    return CompiledRoute(
        tenant=tenant,
        connector=connector,
        provider=provider,
        spec=route,
        condition=BoundedExpression(route.match.when) if route.match.when else None,
        debounce_key=BoundedExpression(debounce.key) if debounce else None,
    )


def build_catalog(specs: LoadedSpecs) -> GateCatalog:
    """The catalog of the enabled connectors and every tenant's policy of loaded spec files."""
    return catalog_of([s.connector for s in specs.connectors], [p.policy for p in specs.policies])


def catalog_of(connectors: Iterable[ConnectorDocument], policies: Iterable[PolicyDocument]) -> GateCatalog:
    """The catalog of the enabled connectors among the documents, and every tenant's policy."""
    enabled = []
    for document in connectors:
        if not document.spec.enabled:
            continue
        tenant, name = document.key
        provider = document.spec.provider
        routes = tuple(compile_route(tenant, name, provider, route) for route in document.spec.routes)
        enabled.append(ConnectorRoutes(tenant, name, provider, routes))
    return GateCatalog(enabled, {p.tenant: p.spec for p in policies})
