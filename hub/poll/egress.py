"""The egress guard of poll sources: which hosts they may fetch from and which addresses they may reach.

A host must be allowed (`allowedHosts`, else the request URL's host only). Its addresses are checked
as every egress of the hub checks them (hub/runtime/egress.py): public, or in `allowedNetworks`, or
non-public with `allowPrivateNetworks` set; `GuardedResolver` checks the resolved ones and the
client checks IP literals itself with `check_target`.
"""

from __future__ import annotations

from yarl import URL

from adapters.pollers.base import EgressRefused
from hub.runtime.egress import (
    Address,
    AddressGuard,
    GuardedResolver,
    Lookup,
    Network,
    address_class,
    host_key,
    system_lookup,
)
from schemas.poll import Egress, PollSettings

__all__ = [
    "Address",
    "EgressPolicy",
    "GuardedResolver",
    "Lookup",
    "Network",
    "address_class",
    "system_lookup",
]


ADDRESS_REMEDY = "spec.poll.egress.allowedNetworks or allowPrivateNetworks allows it"
HOST_REMEDY = "spec.poll.egress.allowedHosts allows it"
"""Said after a refusal, so the spec's author knows which option allows what was refused (a tenant's
connector also needs its Policy's `spec.egress` grant, docs/security.md)."""


class EgressPolicy(AddressGuard):
    """The allowed hosts and networks of one poll source."""

    def __init__(self, egress: Egress, request_url: str) -> None:
        super().__init__(egress.allowedNetworks, allow_private=egress.allowPrivateNetworks, remedy=ADDRESS_REMEDY)
        if egress.allowedHosts:
            patterns = [host_key(host) for host in egress.allowedHosts]
        else:
            host = URL(request_url).raw_host
            if not host:
                raise ValueError("the request URL has no host")
            patterns = [host_key(host)]
        self._exact = frozenset(p for p in patterns if not p.startswith("*."))
        self._suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))  # "*.example.com" -> ".example.com"

    @classmethod
    def for_settings(cls, settings: PollSettings) -> EgressPolicy:
        """The policy of a spec's poll settings."""
        return cls(settings.egress, settings.request.url)

    def host_allowed(self, host: str) -> bool:
        key = host_key(host)
        return key in self._exact or any(key.endswith(s) and len(key) > len(s) for s in self._suffixes)

    def check_host(self, host: str) -> None:
        """Raise `EgressRefused` unless the host is allowed."""
        if not self.host_allowed(host):
            raise EgressRefused(f"host not allowed: {host_key(host) or '(none)'}; {HOST_REMEDY}")

    def check_target(self, host: str) -> None:
        """Check a URL's host before connecting: allowed, and an IP literal's address too.

        aiohttp connects to IP literals without asking the resolver, so this is their only check.
        Legacy numeric forms (`2130706433`, `127.1`, `0x7f.1`) are refused outright.
        """
        self.check_host(host)
        self.check_literal(host)
