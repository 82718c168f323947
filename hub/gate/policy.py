"""Policy decisions: may this route invoke its target for this event?

Order of judgement, first that applies wins:
1. the tenant has no Policy document: denied (`(no policy)`), a gate is closed until configured;
2. the target is outside the tenant's boundary (`allowedSubjects`, `allowedHosts`): denied
   (`(boundary)`), whatever the rules say;
3. any matching `deny` rule: denied by the first such rule (deny overrides allow);
4. any matching `allow` rule: allowed by the first such rule;
5. the policy's `default` (`(default)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from hub.gate.catalog import CompiledRoute
from schemas.patterns import is_within, matches
from schemas.policy import PolicySpec, Rule

NO_POLICY = "(no policy)"
BOUNDARY = "(boundary)"
DEFAULT = "(default)"


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one (event, route), with the rule that decided it and why."""

    allowed: bool
    rule: str
    reason: str

    @property
    def effect(self) -> str:
        """`allow` or `deny`."""
        return "allow" if self.allowed else "deny"


def decide(policy: PolicySpec | None, route: CompiledRoute, event_type: str) -> Decision:
    """The decision for `route` taking an event of `event_type` under the tenant's `policy`."""
    if policy is None:
        return Decision(False, NO_POLICY, f"tenant {route.tenant} has no Policy document")
    outside = _outside_boundary(policy, route)
    if outside:
        return Decision(False, BOUNDARY, outside)
    matching = [rule for rule in policy.rules if _rule_matches(rule, route, event_type)]
    for effect in ("deny", "allow"):
        rule = next((r for r in matching if r.effect == effect), None)
        if rule is not None:
            return Decision(effect == "allow", rule.name, f"rule {rule.name} ({effect})")
    return Decision(policy.default == "allow", DEFAULT, f"no rule matched; the default is {policy.default}")


def _outside_boundary(policy: PolicySpec, route: CompiledRoute) -> str | None:
    target = route.spec.target
    if target.subject is not None:
        if not any(is_within(target.subject, prefix) for prefix in policy.allowedSubjects):
            return f"subject {target.subject} is outside the tenant's allowedSubjects"
        return None
    assert target.http is not None
    host = (target.http.url.host or "").lower()
    if not any(host_allowed(pattern, host) for pattern in policy.allowedHosts):
        return f"host {host} is outside the tenant's allowedHosts"
    return None


def host_allowed(pattern: str, host: str) -> bool:
    """`example.com` matches itself only; `*.example.com` matches its subdomains at any depth, not itself."""
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _rule_matches(rule: Rule, route: CompiledRoute, event_type: str) -> bool:
    target = route.spec.target
    if rule.subjects or rule.hosts:
        subject_fits = target.subject is not None and any(matches(p, target.subject) for p in rule.subjects)
        host = (target.http.url.host or "").lower() if target.http is not None else None
        host_fits = host is not None and any(host_allowed(p, host) for p in rule.hosts)
        if not (subject_fits or host_fits):
            return False
    return (
        _any_glob(rule.connectors, route.connector)
        and _any_glob(rule.providers, route.provider)
        and _any_glob(rule.routes, route.name)
        and (not rule.types or any(matches(p, event_type) for p in rule.types))
    )


def _any_glob(patterns: list[str], name: str) -> bool:
    return not patterns or any(fnmatchcase(name, pattern) for pattern in patterns)
