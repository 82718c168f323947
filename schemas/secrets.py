"""References to secrets. A spec never holds a secret value, only where to find it."""

from __future__ import annotations

import posixpath
import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

SecretSource = Literal["env", "file", "store"]
STORE_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
RESERVED_ENV_PREFIX = "HUB_"
"""The hub's own settings (the master key, the signing key, ...): never a connector's secret."""
RESERVED_PATHS = ("/proc", "/sys", "/dev")
"""Where a file reference could read the hub's own process, the kernel or a device."""


def reserved_reference(source: SecretSource, name: str) -> str | None:
    """Why an `env` or `file` reference may not be used by any spec, operator's or tenant's; None if it may."""
    if source == "env" and name.upper().startswith(RESERVED_ENV_PREFIX):
        return f"{RESERVED_ENV_PREFIX}* variables are the hub's own settings, never a connector's secret"
    if source == "file":
        path = posixpath.normpath("/" + name.lstrip("/"))  # `..` cannot climb out of the check
        if any(path == root or path.startswith(root + "/") for root in RESERVED_PATHS):
            return f"files under {', '.join(RESERVED_PATHS)} are the hub's process, kernel and devices, never a secret"
    return None


class SecretRef(BaseModel):
    """Where a secret lives: an environment variable, a file, or the hub's encrypted store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SecretSource = Field(description="env (variable), file (path) or store (hub secret store)")
    name: str = Field(
        min_length=1,
        max_length=4096,
        description="The variable name (env), the file path (file) or the secret name (store)",
    )
    version: int | None = Field(
        default=None,
        ge=1,
        description="store only: pin this version of the secret (default: the latest, picked up when it changes)",
    )

    @model_validator(mode="after")
    def _store_reference(self) -> Self:
        if self.source == "store" and not re.fullmatch(STORE_NAME_PATTERN, self.name):
            raise ValueError(f"a store secret name matches {STORE_NAME_PATTERN}")
        if self.version is not None and self.source != "store":
            raise ValueError("version applies to store secrets only")
        reserved = reserved_reference(self.source, self.name)
        if reserved is not None:
            raise ValueError(reserved)
        return self


class SecretEntry(BaseModel):
    """One active secret of a connector; several entries are a rotation (any of them verifies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="Key id recorded as `hubkeyid` when this secret verifies (default: the ref's name)",
    )
    secretRef: SecretRef

    @property
    def key_id(self) -> str:
        """The name recorded in envelopes; never the value. A pinned store version is part of it."""
        ref = self.secretRef
        return self.name or (f"{ref.name}@{ref.version}" if ref.version is not None else ref.name)
