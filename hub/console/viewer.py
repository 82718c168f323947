"""Who is looking: the API key behind a console session, held to the admin API's rules.

The checks are the admin API's `Principal` ones (hub/admin/auth.py), with the same rules of reach
and scope (`ApiKey.covers` and `allows`, hub/control/apikeys.py): a tenant out of reach gets the
same 404 as an unknown connector, a missing scope a 403 naming it. Only the refusals differ: the
console answers with a page, not the API's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.console.refusal import Refusal, not_found
from hub.console.session import Session
from hub.control.apikeys import ApiKey


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in key (live: looked up again for this request) and its session."""

    key: ApiKey
    session: Session

    @property
    def key_id(self) -> str:
        return self.key.id

    @property
    def tenant(self) -> str | None:
        """The key's tenant; None for an operator key (every tenant)."""
        return self.key.tenant

    @property
    def is_operator(self) -> bool:
        return self.key.tenant is None

    def has(self, scope: str) -> bool:
        """Whether the key grants the scope."""
        return self.key.allows(scope)

    def reaches(self, tenant: str) -> bool:
        """Whether the key may act for this tenant at all."""
        return self.key.covers(tenant)

    def require_tenant(self, tenant: str) -> None:
        """The same 404 as an unknown connector for a tenant out of reach."""
        if not self.reaches(tenant):
            raise not_found(audited=True)

    def require_scope(self, scope: str) -> None:
        """403 naming the scope."""
        if not self.has(scope):
            raise Refusal(403, "insufficient_scope", f"This key lacks the scope {scope}.")
