"""The Keys page (credential scope): a tenant key manages its tenant's keys, an operator every key.
A new key's token is shown once, in the answer to the form that created it, and never again.

A key never grants more than its creator has: the scopes asked for must be the creator's own, so
the credential scope cannot be used to mint a key with more power."""

from __future__ import annotations

import re

from aiohttp import web

from events.subjects import is_name
from hub.console.call import Call, redirect
from hub.console.refusal import Refusal, invalid, not_found
from hub.control.apikeys import SCOPES, ApiKey, ApiKeyError

_KEY_ID = re.compile(r"[0-9a-f]{16}")
MAX_DESCRIPTION_CHARS = 200
NOTICES = {"revoked": "The key is revoked: its token stopped working at once."}


async def _keys(call: Call) -> list[ApiKey]:
    return await call.console.plane.keys.list(call.viewer.tenant, include_revoked=True)


async def keys_page(call: Call) -> web.StreamResponse:
    """GET /console/keys."""
    return call.render(
        "keys.html",
        title="API keys",
        keys=await _keys(call),
        scopes=SCOPES,
        token=None,
        created=None,
        notice=NOTICES.get(call.request.query.get("notice", "")),
    )


async def create_key(call: Call) -> web.StreamResponse:
    """POST /console/keys: the new key's token in this answer only (201, never cached)."""
    assert call.form is not None
    scopes = [s for s in call.form.getall("scopes", []) if isinstance(s, str)]
    if not scopes:
        raise invalid("Choose at least one scope.", ["scopes"])
    beyond = sorted(set(scopes) - set(SCOPES))
    if beyond:
        raise invalid("Unknown scope.", ["scopes"])
    missing = sorted(s for s in scopes if not call.viewer.has(s))
    if missing:
        raise Refusal(403, "scope_not_held", f"A key cannot grant scopes it lacks: {', '.join(missing)}.")
    tenant: str | None = call.field("tenant").strip() or None
    if call.viewer.tenant is not None:
        if tenant not in (None, call.viewer.tenant):
            raise Refusal(403, "tenant_forbidden", f"This key cannot create keys for tenant {tenant}.")
        tenant = call.viewer.tenant
    elif tenant is not None and not is_name(tenant):
        raise invalid(
            "tenant must be a tenant name (lowercase letters, digits, dashes), or empty for an operator key.",
            ["tenant"],
        )
    description = call.field("description").strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise invalid(f"The description is at most {MAX_DESCRIPTION_CHARS} characters.", ["description"])
    try:
        token, key = await call.console.plane.create_key(tenant, scopes, description, call.actor)
    except ApiKeyError as exc:
        raise invalid(str(exc), ["tenant"]) from None
    return call.render(
        "keys.html", 201, title="API keys", keys=await _keys(call), scopes=SCOPES, token=token, created=key, notice=None
    )


async def revoke_key(call: Call) -> web.StreamResponse:
    """POST /console/keys/{key}/revoke: a key of another tenant is as unknown as a missing one."""
    key_id = call.path("key")
    key = await call.console.plane.keys.get(key_id) if _KEY_ID.fullmatch(key_id) else None
    if key is None:
        raise not_found("No such key.")
    if (key.tenant is None and not call.viewer.is_operator) or (
        key.tenant is not None and not call.viewer.reaches(key.tenant)
    ):
        raise not_found("No such key.", audited=True)
    await call.console.plane.revoke_key(key.id, call.actor)
    return redirect("/console/keys?notice=revoked")
