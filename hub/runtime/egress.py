"""The egress guard of every outbound connection the hub makes for a tenant's configuration: poll
sources (hub/poll/egress.py adds their allowed hosts), the key material of providers' signatures
(hub/ingest/keycache.py) and the gate's HTTP targets (hub/gate/targets.py).

Every address a host resolves to must be public, or in the allowed networks, or non-public with
private networks allowed; a name with any address not allowed is refused as a whole (unspecified
and multicast addresses never pass). `GuardedResolver` is the aiohttp resolver that resolves once,
checks, and hands aiohttp exactly the checked addresses: the connection goes where the check looked
(no second lookup a DNS rebinding could answer differently). aiohttp skips the resolver for IP
literals, so a client checks those itself with `AddressGuard.check_literal`.

A refusal is `EgressRefused` (the pollers' error type, so a poll source's run names it as such).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiohttp.abc import AbstractResolver, ResolveResult

from adapters.pollers.base import EgressRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Lookup = Callable[[str, int, int], Awaitable[Sequence[str]]]
"""(host, port, address family) -> the host's IP addresses, as text."""

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
)
_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


def host_key(host: str) -> str:
    """A host as it is compared: trimmed, lowercase, without the root dot."""
    return host.strip().rstrip(".").lower()


def _embedded(address: Address) -> Address:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4), else the address itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def address_class(address: Address) -> str | None:
    """None for a public address, else why it is not one: private, loopback, link-local, ..."""
    address = _embedded(address)
    if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK):
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address in _CGNAT:
        return "carrier-grade NAT"
    if any(address in network for network in _PRIVATE):
        return "private"
    if address.is_reserved:
        return "reserved"
    return None if address.is_global else "non-public"


class AddressGuard:
    """The addresses one kind of connection may reach: public ones, the `networks` given, and any
    non-public one with `allow_private`. Hosts are the caller's to judge (`check_host` allows all)."""

    def __init__(self, networks: Iterable[str] = (), *, allow_private: bool = False, remedy: str = "") -> None:
        self._networks: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self._allow_private = allow_private
        self._remedy = f"; {remedy}" if remedy else ""
        """What allows a refused non-public address, said after the refusal (where the guard knows it)."""

    def check_host(self, host: str) -> None:
        """Raise `EgressRefused` unless the host may be connected to at all (here: any host)."""

    def check_address(self, address: str, host: str | None = None) -> None:
        """Raise `EgressRefused` unless a connection to `address` (an IP, for `host`) is allowed."""
        suffix = f" for {host}" if host is not None and host != address else ""
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise EgressRefused(f"address not allowed: {address} (not an IP address){suffix}") from None
        why = address_class(parsed)
        if why is None:
            return
        never = why in ("unspecified", "multicast")
        listed = any(a in n for a in (parsed, _embedded(parsed)) for n in self._networks)
        if not never and (listed or self._allow_private):
            return
        raise EgressRefused(f"address not allowed: {address} ({why}){suffix}{'' if never else self._remedy}")

    def check_literal(self, host: str) -> None:
        """Check a URL's host that aiohttp connects to without asking the resolver: an IP literal's
        address must be allowed, and legacy numeric forms (`2130706433`, `127.1`, `0x7f.1`) are
        refused outright. A name passes: its addresses are the resolver's to check."""
        key = host_key(host).removeprefix("[").removesuffix("]")
        try:
            ipaddress.ip_address(key)
        except ValueError:
            if _legacy_ipv4(key):
                raise EgressRefused(f"address not allowed: {key} (not a canonical IP address)") from None
            return
        self.check_address(key, key)


def _legacy_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


async def system_lookup(host: str, port: int, family: int) -> list[str]:
    """The host's addresses from the system resolver (getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info_family, _, _, _, sockaddr in infos:
        address = str(sockaddr[0])
        if info_family == socket.AF_INET6 and len(sockaddr) > 3 and sockaddr[3]:
            address = f"{address.split('%', 1)[0]}%{sockaddr[3]}"  # a link-local address keeps its scope
        if address not in addresses:
            addresses.append(address)
    return addresses


class GuardedResolver(AbstractResolver):
    """Resolves once, checks every address, and returns exactly the checked ones (or refuses)."""

    def __init__(self, guard: AddressGuard, lookup: Lookup = system_lookup) -> None:
        self._guard = guard
        self._lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self._guard.check_host(host)
        addresses = list(await self._lookup(host, port, family))
        if not addresses:
            raise OSError(f"no address for {host_key(host)}")
        for address in addresses:
            self._guard.check_address(address, host_key(host))
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=_NUMERIC_FLAGS,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None
