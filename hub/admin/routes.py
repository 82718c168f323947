"""The admin API's operations. Each is an `Endpoint`: method, path, the scope it needs, and a handler
that receives the already-authenticated call. The same table builds the router and the OpenAPI
document, so the two cannot disagree.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from nats.aio.client import Client as NATS
from pydantic import ValidationError
from redis.asyncio import Redis

from events.envelope import rfc3339
from events.subjects import is_name
from hub.admin.auth import Principal
from hub.admin.errors import ApiError, Denied, bad_request, invalid, not_found
from hub.control.apikeys import SCOPES
from hub.control.checks import ServingLimits, lifecycle_warnings
from hub.control.plane import Actor, ControlPlane, InvalidSpec
from hub.control.secretstore import SecretStoreError
from hub.control.servicemap import ServiceEntry, build_service_map
from hub.control.specstore import RevisionConflict, SpecDocument, StoredSpec
from hub.control.status import ConnectorStatus
from hub.errors import Problem
from hub.jobs.store import OpenedJobStore
from hub.poll.store import PollStore, SourceKey
from hub.settings import Settings
from schemas.connector import ConnectorDocument
from schemas.loader import field_path
from schemas.policy import PolicyDocument
from schemas.suggest import error_message

CATALOG_READ, INSTANCE_MANAGE, OPERATION_INVOKE, OPERATION_READ, CREDENTIAL_MANAGE = SCOPES
MAX_BODY_BYTES = 1024 * 1024
MAX_DOCUMENTS = 200


@dataclass(frozen=True, slots=True)
class AdminContext:
    """What the handlers share."""

    plane: ControlPlane
    ingress_base_url: str
    signing_key: str | None
    service_map_ttl_s: int
    insecure: bool = False
    poll_store: PollStore | None = None
    """Where poll sources' due times are (None: `:poll` answers 503)."""
    limits: ServingLimits = field(default_factory=lambda: ServingLimits.of(Settings()))
    """What PUT, `:validate` and `:diff` check connectors against: the hub's own settings (the hub passes
    them; the default reads this process's environment)."""
    nc: NATS | None = None
    """The hub's NATS connection, for what reads or writes streams (history, jobs); None: those answer 503."""
    redis: Redis | None = None
    """The hub's Valkey connection (rejected-request retries dedupe through it); None: those answer 503."""
    settings: Settings = field(default_factory=Settings)
    """The hub's settings (replay rate, retention), as `limits` above."""
    jobs: OpenedJobStore = field(default_factory=OpenedJobStore)
    """The jobs bucket, opened at the first request that needs it (on `nc`)."""


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request."""

    request: web.Request
    principal: Principal
    admin: AdminContext
    actor: Actor

    @property
    def plane(self) -> ControlPlane:
        """The control plane."""
        return self.admin.plane

    def path(self, name: str) -> str:
        """A path parameter."""
        return self.request.match_info[name]


Handler = Callable[[Call], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One operation of the API."""

    method: str
    path: str
    handler: Handler
    scope: str | None
    """None: any valid key (the API's own description)."""
    summary: str
    operation_id: str
    request_body: str | None = None
    """The schema name of the request body, for the OpenAPI document."""


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers)


async def read_json(request: web.Request) -> Any:
    """The JSON body, capped; 400 when it is not JSON (the message never quotes the body)."""
    try:
        body = await request.read()  # the app's client_max_size is MAX_BODY_BYTES
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("the body is not JSON") from None


def parse_document(data: Any, index: int = 0) -> SpecDocument:
    """A Connector or Policy document, or 422 listing every field's problem."""
    if not isinstance(data, dict):
        raise invalid("a spec document is a JSON object", [{"document": index, "field": "(document)"}])
    model: type[ConnectorDocument] | type[PolicyDocument] = (
        PolicyDocument if data.get("kind") == "Policy" else ConnectorDocument
    )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"document": index, "field": field_path(e["loc"]), "message": error_message(model, e)} for e in exc.errors()
        ]
        raise invalid("the document is not a valid spec", problems) from None


def _problems(problems: list[Problem], index: int = 0) -> list[dict[str, Any]]:
    return [{"document": index, "field": p.field, "message": p.message} for p in problems]


async def read_documents(call: Call) -> list[SpecDocument]:
    """The body's documents (one, a list, or `{"documents": [...]}`), each of a tenant the key reaches."""
    data = await read_json(call.request)
    items = data.get("documents") if isinstance(data, dict) and "documents" in data else data
    items = items if isinstance(items, list) else [items]
    if len(items) > MAX_DOCUMENTS:
        raise invalid(f"at most {MAX_DOCUMENTS} documents per request")
    documents = [parse_document(item, index) for index, item in enumerate(items)]
    for document in documents:
        if not call.principal.reaches(document.metadata.tenant):
            raise Denied(403, "tenant_forbidden", f"this key cannot act for tenant {document.metadata.tenant}")
        if isinstance(document, PolicyDocument) and call.principal.tenant is not None:
            raise Denied(403, "operator_only", "a tenant's Policy is its boundary: only an operator key sets it")
    return documents


def etag(revision: int) -> str:
    """The entity tag of a revision."""
    return f'"{revision}"'


def if_match(request: web.Request) -> int | None:
    """The revision an `If-Match` header names, or None; 400 if it names none."""
    value = request.headers.get("If-Match")
    if value is None:
        return None
    try:
        return int(value.strip().strip('"'))
    except ValueError:
        raise bad_request("If-Match must be a revision, as returned in ETag") from None


def conflict(exc: RevisionConflict) -> ApiError:
    """409 with the revision the store has."""
    return ApiError(409, "revision_conflict", str(exc), currentRevision=exc.current)


async def _stored_connector(call: Call) -> StoredSpec:
    stored = await call.plane.specs.connector(call.path("tenant"), call.path("name"))
    if stored is None:
        raise not_found()
    return stored


def tenant_of_listing(call: Call) -> str | None:
    """`?tenant=` for an operator key (none: every tenant); a tenant key's own tenant."""
    asked = call.request.query.get("tenant")
    if asked is not None:
        call.principal.require_tenant(asked)
        if not is_name(asked):  # `*` or `>` would be a wildcard in the KV lookup
            raise not_found()
        return asked
    return call.principal.tenant


async def list_connectors(call: Call) -> web.Response:
    """The connectors the key can see."""
    stored = await call.plane.specs.connectors(tenant_of_listing(call))
    return json_response({"connectors": [s.with_revision() for s in stored]})


async def get_connector(call: Call) -> web.Response:
    """One connector's spec with its revision."""
    stored = await _stored_connector(call)
    return json_response(stored.with_revision(), headers={"ETag": etag(stored.revision)})


async def put_connector(call: Call) -> web.Response:
    """Create or update; the revision comes from `metadata.revision` or `If-Match`."""
    document = parse_document(await read_json(call.request))
    if not isinstance(document, ConnectorDocument):
        raise invalid("this path takes a Connector document")
    if document.key != (call.path("tenant"), call.path("name")):
        message, problems = "metadata.tenant and metadata.name must be the path's", [{"field": "metadata"}]
        if not call.principal.reaches(document.metadata.tenant):  # the same answer, but audited as a refusal
            raise Denied(422, "invalid_spec", message, problems=problems)
        raise invalid(message, problems)
    expected = if_match(call.request)
    if expected is not None:
        if document.metadata.revision not in (None, expected):
            raise invalid("If-Match and metadata.revision disagree", [{"field": "metadata.revision"}])
        metadata = document.metadata.model_copy(update={"revision": expected})
        document = document.model_copy(update={"metadata": metadata})
    try:
        result = await call.plane.apply(document, call.actor, limits=call.admin.limits)
    except RevisionConflict as exc:
        raise conflict(exc) from None
    except InvalidSpec as exc:
        raise invalid("the connector does not pass the apply checks", _problems(exc.problems)) from None
    headers = {"ETag": etag(result.revision)} if result.revision is not None else None
    answer = result.to_dict() | {"warnings": lifecycle_warnings(document)}
    return json_response(answer, 201 if result.action == "created" else 200, headers)


async def delete_connector(call: Call) -> web.Response:
    """Delete: kept in the trash, restorable for HUB_DELETED_RETENTION; `?purge=true` (formerly
    `?wipeSecrets=true`) keeps nothing and wipes the store secrets only it used (needs the credential scope)."""
    query = call.request.query
    purge = any(query.get(flag, "false").lower() in ("1", "true", "yes") for flag in ("purge", "wipeSecrets"))
    if purge:
        call.principal.require_scope(CREDENTIAL_MANAGE)
    tenant, name = call.path("tenant"), call.path("name")
    try:
        deleted = await call.plane.delete_connector(
            tenant, name, call.actor, expected_revision=if_match(call.request), purge=purge
        )
    except RevisionConflict as exc:
        raise conflict(exc) from None
    if deleted is None:
        raise not_found()
    body: dict[str, Any] = {
        "deleted": f"{tenant}/{name}",
        "revision": deleted.spec.revision,
        "purged": purge,
        "wipedSecrets": deleted.wiped,
        "keptSecrets": deleted.kept,
    }
    if deleted.trashed is not None:
        retention = call.admin.settings.deleted_retention
        body |= {
            "trashedSecrets": deleted.trashed.secret_names,
            "restorableUntil": rfc3339(deleted.trashed.expires_at(retention)),
        }
    return json_response(body)


async def connector_status(call: Call) -> web.Response:
    """The connector's shared status, with its SLOs and certification."""
    stored = await _stored_connector(call)
    status = await call.plane.statuses.get(call.path("tenant"), call.path("name"))
    if status is None:
        status = ConnectorStatus(state="provisioning", revision=stored.revision)
    return json_response({"connector": f"{call.path('tenant')}/{call.path('name')}", **status.to_dict()})


async def poll_now(call: Call) -> web.Response:
    """Make an enabled poll connector due now: the instance holding its lease runs it within its
    next check (a third of the lease TTL at most)."""
    stored = await _stored_connector(call)
    document = stored.document
    assert isinstance(document, ConnectorDocument)
    if document.spec.type != "poll" or not document.spec.enabled:
        raise ApiError(409, "not_pollable", "only an enabled poll connector can be polled")
    if call.admin.poll_store is None:
        raise ApiError(503, "poll_store_unavailable", "this process has no connection to the poll store")
    tenant, name = document.key
    due = time.time()
    await call.admin.poll_store.set_next_run_at(SourceKey(tenant, name), due)
    await call.plane.audit.record_by(call.actor, tenant, "connector_poll", f"{tenant}/{name}", "scheduled")
    return json_response({"connector": f"{tenant}/{name}", "dueAt": rfc3339(due)}, 202)


async def validate_documents(call: Call) -> web.Response:
    """Check documents as an apply would, without storing anything."""
    documents = await read_documents(call)
    problems: list[dict[str, Any]] = []
    warnings: list[str] = []
    for index, document in enumerate(documents):
        problems.extend(_problems(await call.plane.check(document, call.actor, limits=call.admin.limits), index))
        if isinstance(document, ConnectorDocument):
            warnings.extend(lifecycle_warnings(document))
    return json_response(
        {"valid": not problems, "documents": len(documents), "problems": problems, "warnings": warnings}
    )


async def diff_documents(call: Call) -> web.Response:
    """What an apply of the documents would change, field by field."""
    results = []
    for index, document in enumerate(await read_documents(call)):
        try:
            result = await call.plane.apply(document, call.actor, dry_run=True, limits=call.admin.limits)
            warnings = lifecycle_warnings(document) if isinstance(document, ConnectorDocument) else []
            results.append(result.to_dict() | {"warnings": warnings})
        except RevisionConflict as exc:
            raise conflict(exc) from None
        except InvalidSpec as exc:
            raise invalid("a document does not pass the apply checks", _problems(exc.problems, index)) from None
    return json_response({"results": results})


async def service_map(call: Call) -> web.Response:
    """The tenant's connectors, signed."""
    tenant = tenant_of_listing(call)
    if tenant is None:
        raise bad_request("an operator key names the tenant: ?tenant=<tenant>")
    if call.admin.signing_key is None:
        raise ApiError(503, "signing_key_unset", "HUB_SIGNING_KEY is not set: service maps cannot be signed")
    statuses = await call.plane.statuses.all(tenant)
    entries = [
        _service_entry(s, statuses, call.admin.ingress_base_url) for s in await call.plane.specs.connectors(tenant)
    ]
    document = build_service_map(
        tenant, entries, signing_key=call.admin.signing_key, ttl_s=call.admin.service_map_ttl_s
    )
    return json_response(document)


def _service_entry(stored: StoredSpec, statuses: dict[tuple[str, str], ConnectorStatus], base_url: str) -> ServiceEntry:
    document = stored.document
    assert isinstance(document, ConnectorDocument)
    tenant, name = document.key
    status = statuses.get((tenant, name))
    routes = []
    for route in document.spec.routes:
        target: dict[str, Any] = {"subject": route.target.subject}
        if route.target.http is not None:
            target = {"http": {"url": str(route.target.http.url), "method": route.target.http.method}}
        routes.append({"name": route.name, "target": target})
    return ServiceEntry(
        name=name,
        provider=document.spec.provider,
        type=document.spec.type,
        enabled=document.spec.enabled,
        ingress_url=f"{base_url}/hooks/{tenant}/{name}" if document.spec.type == "webhook" else None,
        routes=tuple(routes),
        status=status.state if status else ("provisioning" if document.spec.enabled else "disabled"),
        certification=status.certification.state if status and status.certification else "pending",
    )


async def put_secret(call: Call) -> web.Response:
    """Store a new version: `{"value": text}` or `{"valueBase64": ...}`; the value is never returned."""
    data = await read_json(call.request)
    if not isinstance(data, dict) or len({"value", "valueBase64"} & set(data)) != 1:
        raise invalid('send {"value": "..."} or {"valueBase64": "..."}', [{"field": "value"}])
    try:
        value = data["value"].encode() if "value" in data else base64.b64decode(data["valueBase64"], validate=True)
    except (AttributeError, TypeError, binascii.Error):
        raise invalid("the value is not a string (or not base64)", [{"field": "value"}]) from None
    if not value:
        raise invalid("a secret value cannot be empty", [{"field": "value"}])
    name = call.path("name")  # a store secret name: build_admin_app checks it
    try:
        info = await call.plane.set_secret(call.path("tenant"), name, value, call.actor)
    except SecretStoreError as exc:
        raise ApiError(503, "secret_store_unavailable", str(exc)) from None
    return json_response({"name": name, "version": info.version, "createdAt": info.created_at})


async def list_secrets(call: Call) -> web.Response:
    """Names, versions and timestamps; never a value."""
    infos = await call.plane.secrets.list(call.path("tenant"))
    return json_response({"secrets": [info.to_dict() for info in infos]})


async def delete_secret(call: Call) -> web.Response:
    """Wipe every version of a secret."""
    name = call.path("name")  # a store secret name: build_admin_app checks it
    if not await call.plane.wipe_secret(call.path("tenant"), name, call.actor):
        raise not_found("no such secret")
    return json_response({"wiped": name})


async def openapi_document(call: Call) -> web.Response:
    """This API's OpenAPI description."""
    from hub.admin.openapi import openapi
    from hub.admin.table import ENDPOINTS as ALL_ENDPOINTS

    return json_response(openapi(ALL_ENDPOINTS))


CONNECTOR = "/v1/connectors/{tenant}/{name}"
SECRETS = "/v1/secrets/"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/connectors", list_connectors, CATALOG_READ, "List connectors", "listConnectors"),
    Endpoint(
        "POST",
        "/v1/connectors:validate",
        validate_documents,
        CATALOG_READ,
        "Check documents as an apply would",
        "validateConnectors",
        "Documents",
    ),
    Endpoint(
        "POST",
        "/v1/connectors:diff",
        diff_documents,
        CATALOG_READ,
        "What an apply would change",
        "diffConnectors",
        "Documents",
    ),
    Endpoint(
        "GET", "/v1/connectors/service-map", service_map, CATALOG_READ, "The tenant's signed service map", "serviceMap"
    ),
    Endpoint("GET", CONNECTOR, get_connector, CATALOG_READ, "A connector's spec and revision", "getConnector"),
    Endpoint(
        "PUT", CONNECTOR, put_connector, INSTANCE_MANAGE, "Create or update a connector", "putConnector", "Connector"
    ),
    Endpoint("DELETE", CONNECTOR, delete_connector, INSTANCE_MANAGE, "Delete a connector", "deleteConnector"),
    Endpoint("GET", CONNECTOR + "/status", connector_status, OPERATION_READ, "A connector's status", "connectorStatus"),
    Endpoint("POST", CONNECTOR + ":poll", poll_now, OPERATION_INVOKE, "Poll a poll connector now", "pollConnector"),
    Endpoint("GET", SECRETS + "{tenant}", list_secrets, CREDENTIAL_MANAGE, "List a tenant's secrets", "listSecrets"),
    Endpoint(
        "PUT",
        SECRETS + "{tenant}/{name}",
        put_secret,
        CREDENTIAL_MANAGE,
        "Store a new version of a secret",
        "putSecret",
        "SecretValue",
    ),
    Endpoint("DELETE", SECRETS + "{tenant}/{name}", delete_secret, CREDENTIAL_MANAGE, "Wipe a secret", "deleteSecret"),
    Endpoint("GET", "/v1/openapi.json", openapi_document, None, "This document", "openapi"),
)
