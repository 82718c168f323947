"""Where a provider's key material may come from besides the provider's own hosts: only hosts the
operator allows, never hosts a connector document chose by itself.

Tenants write their own connector documents, so an option such as Pub/Sub's `jwksUrl` or SNS's
`certificateHosts` could otherwise point the hub's key fetches at any host (its loopback services,
say). An adapter accepts another host in such an option only when the operator allows it: the hub
sets the allowed hosts from its setting (`HUB_KEY_FETCH_ALLOWED_HOSTS`) with `allow_key_hosts`
before it validates any connector, so a document naming another host fails validation wherever it
is applied or loaded. Plain http goes only to a loopback host the operator allows (tests, a mirror
on the same machine).

The allowance is a context variable: the hub sets it once for its process; a test scopes it to its
task or to a `key_hosts_allowed` block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

SETTING = "HUB_KEY_FETCH_ALLOWED_HOSTS"
"""The hub's setting the allowed hosts come from, named in refusals."""

_ALLOWED: ContextVar[frozenset[str]] = ContextVar("key_fetch_allowed_hosts", default=frozenset())


def normalized_host(host: str) -> str:
    """A host as it is compared: lowercase, without IPv6 brackets or the root dot."""
    return host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()


def allow_key_hosts(hosts: Iterable[str]) -> Token[frozenset[str]]:
    """Allow exactly these hosts (besides each provider's own) in the current context."""
    return _ALLOWED.set(frozenset(normalized_host(host) for host in hosts))


@contextmanager
def key_hosts_allowed(hosts: Iterable[str]) -> Iterator[None]:
    """Allow these hosts for the duration of the block."""
    token = allow_key_hosts(hosts)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def is_loopback(host: str) -> bool:
    """A loopback IP literal, or `localhost`."""
    key = normalized_host(host)
    try:
        return ipaddress.ip_address(key).is_loopback
    except ValueError:
        return key == "localhost"


def check_key_host(option: str, host: str, *, scheme: str, own: bool, provider_hosts: str) -> None:
    """ValueError naming `option` unless key material may come from `host` over `scheme`.

    `own`: the host is one of the provider's own (`provider_hosts` describes them for the message),
    reached over https only. Any other host needs the operator's allowance, and plain http a
    loopback host the operator allows.
    """
    key = normalized_host(host)
    allowed = key in _ALLOWED.get()
    if not (own or allowed):
        raise ValueError(
            f"{option}: {key} is not the provider's own ({provider_hosts}) nor a host the operator allows ({SETTING})"
        )
    if scheme != "https" and not (allowed and is_loopback(key)):
        raise ValueError(f"{option}: must be https (plain http only to a loopback host the operator allows)")
