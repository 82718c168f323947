"""The console's session cookie: signed (itsdangerous), carrying an API key's id and a CSRF secret,
never the key itself.

A session ends at the first of: its absolute lifetime (counted from sign-in), its idle limit (counted
from the last request, as every answer signs the cookie anew) or the key's revocation (the key is
looked up again on every request by the caller, not here).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeTimedSerializer

from hub.settings import Settings

log = logging.getLogger(__name__)

COOKIE = "hub_console"
LIFETIME_S = 8 * 3600
IDLE_S = 30 * 60
_SALT = "connector-hub console session"
_HKDF_INFO = b"connector-hub console session signing key v1"
EPHEMERAL_WARNING = (
    "console: neither HUB_MASTER_KEY nor HUB_SIGNING_KEY is set: console sessions are signed with a key "
    "made for this process, so they do not survive a restart or span workers"
)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: the key's id, its CSRF secret and when it signed in (epoch seconds)."""

    key_id: str
    csrf: str
    issued_at: float

    @classmethod
    def new(cls, key_id: str, now: float | None = None) -> Session:
        """A fresh session for a key that just signed in."""
        return cls(key_id, secrets.token_urlsafe(32), time.time() if now is None else now)


class SessionCodec:
    """Turns sessions into cookie values and back, refusing forged, expired or idle ones."""

    def __init__(self, secret: bytes, *, lifetime_s: int = LIFETIME_S, idle_s: int = IDLE_S) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.lifetime_s = lifetime_s
        self.idle_s = idle_s

    def dumps(self, session: Session) -> str:
        """The cookie value: signed, timestamped now (the idle clock restarts)."""
        payload = {"k": session.key_id, "c": session.csrf, "i": session.issued_at}
        return self._serializer.dumps(payload)

    def loads(self, value: str, now: float | None = None) -> Session | None:
        """The session in a cookie value, or None: bad signature, idle too long, or past its lifetime."""
        try:
            payload: Any = self._serializer.loads(value, max_age=self.idle_s)
        except BadSignature:  # SignatureExpired is one: idle for longer than the limit
            return None
        if not isinstance(payload, dict):
            return None
        key_id, csrf, issued_at = payload.get("k"), payload.get("c"), payload.get("i")
        if not (isinstance(key_id, str) and isinstance(csrf, str) and isinstance(issued_at, int | float)):
            return None
        if (time.time() if now is None else now) - issued_at > self.lifetime_s:
            return None
        return Session(key_id, csrf, float(issued_at))


def signing_secret(settings: Settings) -> bytes:
    """The cookie signing key: derived (HKDF) from the master key or the signing key, so every process
    of one hub shares it; else random for this process only, which the log says."""
    material = _configured_material(settings)
    if material is None:
        log.warning(EPHEMERAL_WARNING)
        return secrets.token_bytes(32)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(material)


def _configured_material(settings: Settings) -> bytes | None:
    for secret in (settings.master_key, settings.signing_key):
        value = secret.get_secret_value().strip() if secret is not None else ""
        if value:
            return value.encode()
    if settings.master_key_file is not None:
        try:
            value = settings.master_key_file.read_text().strip()
        except OSError:  # the hub itself refuses to start on this; the console need not say it again
            return None
        return value.encode() or None
    return None
