"""The Connector page and its forms: the spec (read-only YAML) and revision, the secrets it
references (set or not, versions, never a value), "Set key", enable/disable, poll now, its routes
with their limits and its webhook URL."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from events.envelope import rfc3339
from hub.console.call import Call, redirect
from hub.console.refusal import Refusal, invalid, not_found
from hub.control.apikeys import SCOPES
from hub.control.plane import InvalidSpec
from hub.control.secretstore import SecretStoreError
from hub.control.specstore import RevisionConflict, StoredSpec
from hub.control.status import ConnectorStatus
from hub.gate.breaker import BreakerState, target_key
from hub.poll.store import SourceKey
from schemas.connector import ConnectorDocument
from schemas.durations import format_duration
from schemas.secrets import STORE_NAME_PATTERN, SecretRef

CATALOG_READ, INSTANCE_MANAGE, OPERATION_INVOKE, OPERATION_READ, CREDENTIAL_MANAGE = SCOPES
NOTICES = {
    "secret_set": "The new secret version is stored.",
    "enabled": "The connector is enabled.",
    "disabled": "The connector is disabled: senders now get 404.",
    "poll_scheduled": "The connector is due now: the instance holding its lease runs it shortly.",
    "restored": "The connector is restored as a new revision and served again.",
}
"""What a form's redirect may announce, by code (the page never reflects text from the query)."""


@dataclass(frozen=True, slots=True)
class SecretRow:
    """A secret the connector references: where from, and for a store secret whether it is set."""

    role: str
    source: str
    name: str
    pinned: int | None
    stored_version: int | None
    updated_at: str | None


async def _stored(call: Call) -> tuple[StoredSpec, ConnectorDocument]:
    stored = await call.console.plane.specs.connector(call.path("tenant"), call.path("name"))
    if stored is None or not isinstance(stored.document, ConnectorDocument):
        raise not_found()
    return stored, stored.document


def _references(document: ConnectorDocument) -> list[tuple[str, SecretRef]]:
    refs = [(f"signing secret {entry.key_id}", entry.secretRef) for entry in document.spec.secrets]
    if document.spec.poll is not None and document.spec.poll.auth is not None:
        refs.append(("poll credential", document.spec.poll.auth.secretRef))
    return refs


async def _secret_rows(call: Call, document: ConnectorDocument) -> list[SecretRow] | None:
    """The referenced secrets; None when the key may not see the store (no credential scope)."""
    if not call.viewer.has(CREDENTIAL_MANAGE):
        return None
    rows = []
    for role, ref in _references(document):
        info = (
            await call.console.plane.secrets.info(document.metadata.tenant, ref.name) if ref.source == "store" else None
        )
        latest = info.versions[-1] if info else None
        rows.append(
            SecretRow(
                role,
                ref.source,
                ref.name,
                ref.version,
                latest.version if latest else None,
                latest.created_at if latest else None,
            )
        )
    return rows


async def _poll_facts(call: Call, document: ConnectorDocument) -> dict[str, str] | None:
    """Cursor, last run, next run and backoff of a poll connector (None for a webhook one)."""
    store = call.console.poll_store
    if document.spec.type != "poll" or store is None or not call.viewer.has(OPERATION_READ):
        return None
    source = SourceKey(*document.key)
    initial = document.spec.poll.initialCursor if document.spec.poll else None
    state = await store.load_state(source, initial)
    status = await store.status(source)
    next_at = await store.next_run_at(source)
    failures = status.get("failures", "0")
    return {
        "cursor": state.cursor or "(none yet)",
        "last run": status.get("lastRunAt", "never"),
        "next run": rfc3339(next_at) if next_at is not None else "at the next schedule slot",
        "backoff": "none" if failures in ("", "0") else f"{failures} consecutive failures",
    }


async def connector_status(call: Call, document: ConnectorDocument, revision: int) -> ConnectorStatus | None:
    """The shared status (None without the operation.read scope)."""
    if not call.viewer.has(OPERATION_READ):
        return None
    status = await call.console.plane.statuses.get(*document.key)
    return status or ConnectorStatus(state="provisioning" if document.spec.enabled else "disabled", revision=revision)


async def connector_page(call: Call) -> web.StreamResponse:
    """GET /console/connectors/{tenant}/{name}."""
    stored, document = await _stored(call)
    tenant, name = document.key
    values: dict[str, Any] = {
        "title": f"Connector {tenant}/{name}",
        "document": document,
        "revision": stored.revision,
        "spec_yaml": yaml.safe_dump(stored.with_revision(), sort_keys=False),
        "status": await connector_status(call, document, stored.revision),
        "secrets": await _secret_rows(call, document),
        "poll": await _poll_facts(call, document),
        "webhook_url": f"{call.console.ingress_base_url}/hooks/{tenant}/{name}"
        if document.spec.type == "webhook"
        else None,
        "notice": NOTICES.get(call.request.query.get("notice", "")),
        "can_manage": call.viewer.has(INSTANCE_MANAGE),
        "deleted_retention": format_duration(call.console.settings.deleted_retention),
        "can_invoke": call.viewer.has(OPERATION_INVOKE),
        "can_set_secrets": call.viewer.has(CREDENTIAL_MANAGE),
        "breakers": _breaker_states(call, document),
    }
    return call.render("connector.html", **values)


def _breaker_states(call: Call, document: ConnectorDocument) -> dict[str, str] | None:
    """Each route's target breaker in this process ("closed" until its target failed); None when this
    process dispatches nothing. Breakers are per process: another instance may see its target otherwise."""
    states = call.console.breakers()
    if states is None:
        return None
    return {
        route.name: BREAKER_TEXT[states.get(target_key(route.target), BreakerState.CLOSED)]
        for route in document.spec.routes
    }


BREAKER_TEXT = {BreakerState.CLOSED: "closed", BreakerState.OPEN: "open", BreakerState.HALF_OPEN: "half-open"}


async def status_fragment(call: Call) -> web.StreamResponse:
    """GET .../status: the status block alone, which the page's script refreshes in place."""
    stored, document = await _stored(call)
    status = await connector_status(call, document, stored.revision)
    return call.render("status_fragment.html", status=status)


async def set_secret(call: Call) -> web.StreamResponse:
    """POST .../secrets/{secret}: a new version of a store secret the connector references. The value
    goes from the form to the store once; it is never rendered, logged, audited or put in the session."""
    _, document = await _stored(call)
    secret = call.path("secret")
    referenced = {ref.name for _, ref in _references(document) if ref.source == "store"}
    if re.fullmatch(STORE_NAME_PATTERN, secret) is None or secret not in referenced:
        raise not_found("No such secret.")
    value = call.field("value")
    if not value:
        raise invalid("A secret value cannot be empty.", ["value"])
    try:
        await call.console.plane.set_secret(document.metadata.tenant, secret, value.encode(), call.actor)
    except SecretStoreError as exc:  # messages name the secret, never the value
        raise Refusal(503, "secret_store_unavailable", str(exc), audited=False) from None
    return redirect(f"{_url(document)}?notice=secret_set")


async def set_enabled(call: Call) -> web.StreamResponse:
    """POST .../enabled: the stored spec applied again with `enabled` flipped, based on the revision
    the page showed (a change made meanwhile is a conflict, not overwritten)."""
    _, document = await _stored(call)
    wanted = call.field("enabled")
    if wanted not in ("true", "false"):
        raise invalid("enabled must be true or false.", ["enabled"])
    revision = call.field("revision")
    if not revision.isdigit():
        raise invalid("The form names no revision: reload the page.", ["revision"])
    metadata = document.metadata.model_copy(update={"revision": int(revision)})
    spec = document.spec.model_copy(update={"enabled": wanted == "true"})
    try:
        await call.console.plane.apply(
            document.model_copy(update={"metadata": metadata, "spec": spec}), call.actor, limits=call.console.limits
        )
    except RevisionConflict as exc:
        message = f"The connector changed meanwhile (now revision {exc.current}): reload the page and retry."
        raise Refusal(409, "revision_conflict", message, audited=False) from None
    except InvalidSpec as exc:
        problems = [f"{p.field}: {p.message}" for p in exc.problems]
        raise invalid("The connector does not pass the apply checks.", problems) from None
    return redirect(f"{_url(document)}?notice={'enabled' if wanted == 'true' else 'disabled'}")


async def poll_now(call: Call) -> web.StreamResponse:
    """POST .../poll: due now, as the admin API's `:poll` (same check, same audit record)."""
    _, document = await _stored(call)
    if document.spec.type != "poll" or not document.spec.enabled:
        raise Refusal(409, "not_pollable", "Only an enabled poll connector can be polled.", audited=False)
    store = call.console.poll_store
    if store is None:
        raise Refusal(503, "poll_store_unavailable", "This process has no connection to the poll store.", audited=False)
    tenant, name = document.key
    await store.set_next_run_at(SourceKey(tenant, name), time.time())
    await call.console.plane.audit.record_by(call.actor, tenant, "connector_poll", f"{tenant}/{name}", "scheduled")
    return redirect(f"{_url(document)}?notice=poll_scheduled")


def _url(document: ConnectorDocument) -> str:
    tenant, name = document.key
    return f"/console/connectors/{tenant}/{name}"
