"""A tenant's service map: its connectors, signed with `HUB_SIGNING_KEY` so a consumer can trust it.

The signature (itsdangerous, HMAC-SHA256, salted so it can never pass for another of the hub's
signatures) covers the canonical JSON of the whole map except the signature itself: keys sorted at
every level, no whitespace. Any JSON serializer may therefore carry the map (reordered, indented);
a changed value never verifies. The map also carries when it was made and for how long it holds,
so a stale copy stops being trusted on its own.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from itsdangerous import BadData, Signer, base64_decode, base64_encode

from events.envelope import rfc3339

SALT = "connector-hub.service-map"
DEFAULT_TTL_S = 300

ConnectorType = Literal["webhook", "poll"]
Reason = Literal["malformed", "bad_signature", "expired", "not_yet_valid"]

_FIELDS: dict[str, type] = {"tenant": str, "generatedAt": str, "ttlSeconds": int, "connectors": list, "signature": str}


class ServiceMapError(Exception):
    """A service map that is not to be trusted; `reason` says why in one word."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


@dataclass(frozen=True)
class ServiceEntry:
    """One connector as its tenant's consumers see it.

    Routes keep only their name and where they deliver (`{"subject": ...}` or
    `{"http": {"url": ..., "method": ...}}`): HTTP headers, which may carry credentials, and the
    other dispatch settings are dropped when the entry is made, so they never reach a map.
    """

    name: str
    provider: str
    type: ConnectorType
    enabled: bool
    ingress_url: str | None  # None for poll connectors: nothing is pushed to them
    routes: tuple[dict[str, Any], ...]
    status: str
    certification: str = "pending"
    """pending, monitoring, certified or failed (hub/control/certification.py)."""

    def __post_init__(self) -> None:
        if self.type not in ("webhook", "poll"):
            raise ValueError(f"connector {self.name!r}: type must be webhook or poll, not {self.type!r}")
        object.__setattr__(self, "routes", tuple(_route_view(self.name, route) for route in self.routes))

    def to_dict(self) -> dict[str, Any]:
        """The entry as it appears in a map (camelCase)."""
        return {
            "name": self.name,
            "provider": self.provider,
            "type": self.type,
            "enabled": self.enabled,
            "ingressUrl": self.ingress_url,
            "routes": copy.deepcopy(list(self.routes)),
            "status": self.status,
            "certification": self.certification,
        }


def build_service_map(
    tenant: str,
    entries: Iterable[ServiceEntry],
    *,
    signing_key: str | bytes,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> dict[str, Any]:
    """The signed map of `tenant`'s connectors (sorted by name), valid for `ttl_s` seconds from `now`."""
    signer = _signer(signing_key)
    if ttl_s < 1:
        raise ValueError(f"ttl_s must be at least 1 second, not {ttl_s}")
    body: dict[str, Any] = {
        "tenant": tenant,
        "generatedAt": rfc3339(time.time() if now is None else now),
        "ttlSeconds": ttl_s,
        "connectors": [entry.to_dict() for entry in sorted(entries, key=lambda entry: entry.name)],
    }
    return {**body, "signature": signer.get_signature(_canonical(body)).decode("ascii")}


def verify_service_map(
    document: Mapping[str, Any] | bytes | str,
    signing_key: str | bytes,
    *,
    now: float | None = None,
    leeway_s: float = 5.0,
) -> dict[str, Any]:
    """The map, once its signature and validity window check out; ServiceMapError otherwise.

    `leeway_s` tolerates a signer whose clock runs ahead; expiry gets no leeway.
    """
    signer = _signer(signing_key)
    verified = _parse(document)
    body = {field: value for field, value in verified.items() if field != "signature"}
    try:
        canonical = _canonical(body)
    except orjson.JSONEncodeError as exc:
        raise ServiceMapError("malformed", f"not representable as JSON: {exc}") from None
    signature = verified["signature"]
    if not (_is_canonical_base64(signature) and signer.verify_signature(canonical, signature)):
        raise ServiceMapError("bad_signature", "the signature does not match the map's content under this key")
    generated = generated_at(verified).timestamp()
    expires = generated + verified["ttlSeconds"]
    current = time.time() if now is None else now
    if expires < current:
        raise ServiceMapError("expired", f"expired at {rfc3339(expires)}, {current - expires:.0f}s ago")
    if generated > current + leeway_s:
        raise ServiceMapError(
            "not_yet_valid",
            f"generated at {verified['generatedAt']}, {generated - current:.0f}s from now "
            f"(more clock skew than the {leeway_s:g}s allowed)",
        )
    return verified


def _signer(signing_key: str | bytes) -> Signer:
    if not signing_key:
        raise ValueError("the signing key is empty")
    return Signer(signing_key, salt=SALT, digest_method=hashlib.sha256)


def _canonical(body: Mapping[str, Any]) -> bytes:
    """The signed bytes: JSON with keys sorted at every level and no whitespace."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _is_canonical_base64(signature: str) -> bool:
    """Whether the signature is spelled the one way its bytes encode.

    Base64 decoding ignores the spare low bits of the last character and tolerates padding, so
    `verify_signature` alone accepts several spellings of one signature; requiring the canonical
    one means no changed character of a map ever verifies.
    """
    try:
        return base64_encode(base64_decode(signature)) == signature.encode()
    except BadData:
        return False


def _parse(document: Mapping[str, Any] | bytes | str) -> dict[str, Any]:
    """The document as a dict whose fields have the right types (not yet verified)."""
    if isinstance(document, bytes | str):
        try:
            document = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise ServiceMapError("malformed", f"not JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise ServiceMapError("malformed", "not a JSON object")
    parsed = dict(document)
    for field, kind in _FIELDS.items():
        value = parsed.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ServiceMapError("malformed", f"{field} is missing or not a {kind.__name__}")
    if not all(isinstance(connector, dict) for connector in parsed["connectors"]):
        raise ServiceMapError("malformed", "connectors must all be JSON objects")
    generated_at(parsed)
    return parsed


def generated_at(document: Mapping[str, Any]) -> datetime:
    try:
        generated = datetime.fromisoformat(document["generatedAt"])
    except ValueError:
        raise ServiceMapError("malformed", "generatedAt is not an RFC 3339 time") from None
    if generated.tzinfo is None:
        raise ServiceMapError("malformed", "generatedAt has no UTC offset")
    return generated


def _route_view(connector: str, route: Mapping[str, Any]) -> dict[str, Any]:
    """What a map shows of a route; ValueError when it has no name or not exactly one target."""
    name, target = route.get("name"), route.get("target")
    if not isinstance(name, str) or not isinstance(target, Mapping):
        raise ValueError(f"connector {connector!r}: a route needs a name and a target")
    subject, http = target.get("subject"), target.get("http")
    if isinstance(subject, str) and http is None:
        return {"name": name, "target": {"subject": subject}}
    if subject is None and isinstance(http, Mapping):
        url, method = http.get("url"), http.get("method", "POST")
        if isinstance(url, str) and isinstance(method, str):
            return {"name": name, "target": {"http": {"url": url, "method": method}}}
    # The route itself is not quoted: its headers may hold credentials.
    raise ValueError(
        f"connector {connector!r}, route {name!r}: the target must be exactly one of "
        "{'subject': str} or {'http': {'url': str, 'method': str}}"
    )
