"""References to secrets. A spec never holds a secret value, only where to find it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SecretSource = Literal["env", "file", "store"]


class SecretRef(BaseModel):
    """Where a secret lives: an environment variable, a file, or the hub's encrypted store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SecretSource = Field(description="env (variable), file (path) or store (hub secret store)")
    name: str = Field(
        min_length=1,
        max_length=4096,
        description="The variable name (env), the file path (file) or the secret name (store)",
    )


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
        """The name recorded in envelopes; never the value."""
        return self.name or self.secretRef.name
