"""Who is calling: the API key behind `Authorization: Bearer`, and what it may do for which tenant.

Order of checks for a route: a valid key (else 401), the tenant in reach of the key (else the same
404 an unknown connector gets, so a key never learns what another tenant has), then the route's
scope (else 403 naming the scope). Every refusal is audited.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from hub.admin.errors import Denied
from hub.control.apikeys import SCOPES, ApiKey, ApiKeyStore, reaches

INSECURE_KEY_ID = "insecure-no-auth"
HOST_NOT_LOOPBACK = "host_not_loopback"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HOST_HEADER = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::[0-9]{1,5})?")
"""`host[:port]`, an IPv6 literal in brackets (RFC 9110 `Host`)."""


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback IP literal (an IPv6 one with or without brackets)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def addressed_to_loopback(host_headers: Sequence[str]) -> bool:
    """Whether a request's one `Host` header names this machine's loopback: `127.0.0.1[:port]`,
    `localhost[:port]` or `[::1][:port]`. A browser sends a page's own name as `Host`, also when an
    attacker's DNS rebinds that name to 127.0.0.1: this tells a local client from such a page."""
    if len(host_headers) != 1 or (match := _HOST_HEADER.fullmatch(host_headers[0])) is None:
        return False
    return is_loopback_host(match["host"])


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a key's id, its tenant (None: an operator key, every tenant) and scopes."""

    key_id: str
    tenant: str | None
    scopes: frozenset[str]

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        """The principal an API key stands for."""
        return cls(key.id, key.tenant, frozenset(key.scopes))

    @classmethod
    def insecure(cls) -> Principal:
        """Everything, for every tenant: only with `--insecure-no-auth`."""
        return cls(INSECURE_KEY_ID, None, frozenset(SCOPES))

    def reaches(self, tenant: str) -> bool:
        """Whether the key may act for this tenant at all."""
        return reaches(self.tenant, tenant)

    def require_tenant(self, tenant: str) -> None:
        """The same 404 as an unknown connector for a tenant out of reach."""
        if not self.reaches(tenant):
            raise Denied(404, "not_found", "no such connector")

    def require_scope(self, scope: str) -> None:
        """403 naming the scope the route needs."""
        if scope not in self.scopes:
            raise Denied(403, "insufficient_scope", f"this key lacks the scope {scope}", requiredScope=scope)


def request_id(request: web.Request) -> str:
    """The caller's `X-Request-Id` when it is a sane token, else a new one."""
    given = request.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


async def authenticate(request: web.Request, keys: ApiKeyStore, *, insecure: bool) -> Principal:
    """The caller's principal, or 401 (`missing_key` or `invalid_key`)."""
    if insecure:
        return Principal.insecure()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Denied(401, "missing_key", "send an API key as Authorization: Bearer <key>")
    key = await keys.authenticate(token.strip())
    if key is None:
        raise Denied(401, "invalid_key", "the API key is unknown, revoked or malformed")
    return Principal.of(key)
