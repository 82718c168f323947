"""What a console page answers instead of its content: a status, a machine-readable code (the admin
API's codes, hub/admin/errors.py) and a message for people, shown in a role="alert" region.

Messages name fields, scopes and revisions; never a submitted value.
"""

from __future__ import annotations

from collections.abc import Sequence


class Refusal(Exception):
    """A page refused: rendered as the error page with this status. `audited` refusals are of the
    caller (a tenant out of reach, a scope, a CSRF token) and are recorded as the API records its denials."""

    def __init__(
        self, status: int, code: str, message: str, *, audited: bool = True, problems: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.audited = audited
        self.problems = tuple(problems)


def not_found(what: str = "No such connector.", *, audited: bool = False) -> Refusal:
    """404: unknown, or of a tenant the key cannot see (the two answer the same page; only the second
    refuses the caller, so only it is audited, as in the admin API)."""
    return Refusal(404, "not_found", what, audited=audited)


def invalid(message: str, problems: Sequence[str] = ()) -> Refusal:
    """422: a form that is well-formed but not acceptable (not a refusal of the caller: not audited)."""
    return Refusal(422, "invalid_spec", message, audited=False, problems=problems)
