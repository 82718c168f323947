"""The Policy document: who in a tenant may invoke what, and the tenant's own boundary and limits.

Rules are ordered and each says `allow` or `deny` for the (connector, provider, event type, route,
target) it matches; a matching deny overrides any allow, and when no rule matches the `default`
applies (deny unless set). Independently of every rule, a target subject outside
`allowedSubjects` or an HTTP host outside `allowedHosts` is denied: the boundary is what keeps a
tenant's routes from reaching another tenant's services.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from schemas.connector import HUB_SUBJECT_ROOT, Limits, Metadata
from schemas.patterns import check_pattern, is_within
from schemas.poll import check_network

Effect = Literal["allow", "deny"]
HOST_PATTERN = r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
NAME_GLOB_PATTERN = r"^[a-z0-9*?-]{1,63}$"
SUBJECT_PREFIX_PATTERN = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"

DottedPattern = Annotated[str, AfterValidator(check_pattern)]
NameGlob = Annotated[str, Field(pattern=NAME_GLOB_PATTERN, description="A name, or a glob with * and ?")]
HostPattern = Annotated[str, Field(pattern=HOST_PATTERN, description="A host name, or *.domain for its subdomains")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Model):
    """One ordered rule; every criterion given must match (an omitted one matches anything)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,63}$", description="Named in decisions, audit records and explain")
    effect: Effect
    connectors: list[NameGlob] = Field(default_factory=list)
    providers: list[NameGlob] = Field(default_factory=list)
    types: list[DottedPattern] = Field(default_factory=list, description="Event type patterns (`*`, final `>`)")
    routes: list[NameGlob] = Field(default_factory=list)
    subjects: list[DottedPattern] = Field(default_factory=list, description="Subject target patterns")
    hosts: list[HostPattern] = Field(default_factory=list, description="HTTP target hosts")


class PolicyEgress(_Model):
    """The operator's exceptions to the egress guard for this tenant: the only place they come from.

    A tenant's own connector may ask for `egress.allowPrivateNetworks` or `egress.allowedNetworks`
    only where this grants them; HTTP route targets resolving to non-public addresses are refused
    unless this allows those networks.
    """

    allowPrivateNetworks: bool = Field(
        default=False, description="The tenant may reach private, loopback and link-local addresses (polls, targets)"
    )
    allowedNetworks: list[Annotated[str, AfterValidator(check_network)]] = Field(
        default_factory=list, description="Non-public networks (CIDR) the tenant may reach anyway"
    )


class PolicySpec(_Model):
    """A tenant's boundary, its tenant-wide limits and its rules."""

    allowedSubjects: list[Annotated[str, Field(pattern=SUBJECT_PREFIX_PATTERN)]] = Field(
        default_factory=list, description="Subject prefixes (token-wise) the tenant's subject targets must be under"
    )
    allowedHosts: list[HostPattern] = Field(
        default_factory=list, description="Hosts the tenant's HTTP targets may call (`*.example.com` for subdomains)"
    )
    egress: PolicyEgress = Field(
        default_factory=PolicyEgress, description="Exceptions to the egress guard, granted by the operator"
    )
    limits: Limits = Field(default_factory=Limits, description="Tenant-wide limits, applied on top of each route's")
    default: Effect = Field(default="deny", description="The decision when no rule matches")
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        internal = [p for p in self.allowedSubjects if is_within(p, HUB_SUBJECT_ROOT)]
        if internal:
            raise ValueError(f"allowedSubjects cannot include the hub's own `{HUB_SUBJECT_ROOT}.` subjects")
        return self


class PolicyDocument(_Model):
    """`apiVersion: hub/v1`, `kind: Policy`: one per tenant."""

    apiVersion: Literal["hub/v1"]
    kind: Literal["Policy"]
    metadata: Metadata
    spec: PolicySpec

    @property
    def tenant(self) -> str:
        """The tenant the policy governs."""
        return self.metadata.tenant
