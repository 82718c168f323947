"""The tenant boundary of a connector document: what a document written with a tenant's key may
reference and reach.

Operators supply specs through files (`HUB_CONNECTORS`), the operator CLI and operator API keys;
tenants through their own API keys (the admin API, the console). A tenant's document references
only that tenant's store secrets, never the hub's environment or files, and asks for no exception
to the egress guard that the tenant's Policy (which only an operator writes) does not grant. The
check runs where a document is applied and again where each instance builds it, against the Policy
it has then: revoking a grant in the Policy takes effect without the tenant's cooperation.
"""

from __future__ import annotations

import ipaddress

from hub.errors import Problem
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from schemas.secrets import SecretRef

STORE_ONLY = (
    "a tenant's connector references only its own store secrets (`source: store`, set with "
    "`PUT /v1/secrets/{tenant}/{name}`); env and file references are for operator-supplied specs "
    "(spec files, the operator CLI or an operator key)"
)


def tenant_boundary_problems(document: ConnectorDocument, policy: PolicyDocument | None) -> list[Problem]:
    """Every way a tenant-written connector steps outside its tenant; empty when it stays inside."""
    label = "/".join(document.key)
    problems = [
        Problem(label, f"{field}.source", f"{ref.source} is not allowed here: {STORE_ONLY}")
        for field, ref in _secret_refs(document)
        if ref.source != "store"
    ]
    poll = document.spec.poll
    if poll is None:
        return problems
    granted = policy.spec.egress if policy is not None else None
    if poll.egress.allowPrivateNetworks and not (granted and granted.allowPrivateNetworks):
        problems.append(
            Problem(
                label,
                "spec.poll.egress.allowPrivateNetworks",
                "only the operator grants private networks: the tenant's Policy must set "
                "spec.egress.allowPrivateNetworks: true",
            )
        )
    for index, network in enumerate(poll.egress.allowedNetworks):
        if granted is None or not _within(network, granted.allowedNetworks, granted.allowPrivateNetworks):
            problems.append(
                Problem(
                    label,
                    f"spec.poll.egress.allowedNetworks[{index}]",
                    f"{network} is not granted to this tenant: the operator lists it (or a network containing it) "
                    "in the Policy's spec.egress.allowedNetworks",
                )
            )
    return problems


def _secret_refs(document: ConnectorDocument) -> list[tuple[str, SecretRef]]:
    refs = [(f"spec.secrets[{i}].secretRef", entry.secretRef) for i, entry in enumerate(document.spec.secrets)]
    if document.spec.poll is not None and document.spec.poll.auth is not None:
        refs.append(("spec.poll.auth.secretRef", document.spec.poll.auth.secretRef))
    return refs


def _within(network: str, granted: list[str], private_granted: bool) -> bool:
    """Whether a network a connector asks for lies inside what the Policy grants."""
    asked = ipaddress.ip_network(network, strict=False)
    if asked.is_global or private_granted:  # a public network needs no exception; a private one is granted
        return True
    for grant in granted:
        allowed = ipaddress.ip_network(grant, strict=False)
        if asked.version == allowed.version and asked.subnet_of(allowed):  # type: ignore[arg-type]
            return True
    return False
