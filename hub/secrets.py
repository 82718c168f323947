"""Resolve a connector's `secretRef`s into signing secrets at start-up.

Values are read once and kept only as bytes inside `SigningSecret` (whose repr hides them).
A missing secret is a start-up error that names the connector and the reference, never a value.
"""

from __future__ import annotations

import os
from pathlib import Path

from adapters.base import SigningSecret
from schemas.secrets import SecretEntry


class SecretResolutionError(Exception):
    """A secret reference could not be resolved."""


def resolve_secret(entry: SecretEntry) -> SigningSecret:
    """The secret an entry refers to, or SecretResolutionError saying which reference failed."""
    ref = entry.secretRef
    if ref.source == "env":
        value = os.environ.get(ref.name)
        if not value:
            raise SecretResolutionError(f"environment variable {ref.name} is not set or empty")
        return SigningSecret(entry.key_id, value.encode())
    if ref.source == "file":
        try:
            content = Path(ref.name).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise SecretResolutionError(f"secret file {ref.name} cannot be read: {exc.strerror}") from None
        if not content:
            raise SecretResolutionError(f"secret file {ref.name} is empty")
        return SigningSecret(entry.key_id, content)
    raise SecretResolutionError(f"secret source {ref.source!r} ({ref.name}) is not available in this version")
