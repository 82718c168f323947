"""A route's expressions on one event, and the decision that follows: shared by the policy consumer
and `connector-hub policy explain`, so that both judge an event the same way.

An expression that exceeds its evaluation budget is a decision, not an error of the event: the
route is denied for that event by the pseudo-rule `(condition_error)`, audited and counted like
any denial, and the event is acked. Raising instead would NAK the event into a redelivery loop,
each delivery paying the budget again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.gate.catalog import CompiledRoute, ConditionError
from hub.gate.policy import Decision, decide
from schemas.policy import PolicySpec

CONDITION_ERROR = "(condition_error)"


def route_decision(
    policy: PolicySpec | None, route: CompiledRoute, event_type: str, envelope: Mapping[str, Any]
) -> Decision | None:
    """The decision on a route whose types fit the event, or None when its `when` is false for it.

    The debounce key is evaluated (strictly) only when the policy allows the route: a denied route
    is never dispatched, so its key is never needed.
    """
    try:
        if not route.fits_condition(envelope):
            return None
        decision = decide(policy, route, event_type)
        if decision.allowed:
            route.debounce_value(envelope, strict=True)
    except ConditionError as exc:
        return Decision(False, CONDITION_ERROR, f"condition_error: {exc}")
    return decision
