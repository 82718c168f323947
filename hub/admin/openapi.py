"""The admin API's OpenAPI 3.1 document, built from the endpoint table and the spec models."""

from __future__ import annotations

import functools
import re
from typing import Any

from hub.admin.routes import Endpoint
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument

_PARAMETER = re.compile(r"\{([a-z]+)\}")
_ERROR_STATUSES = {
    "400": "The body cannot be read",
    "401": "No key, or an unknown, revoked or malformed one",
    "403": "The key lacks the scope, or cannot act for a tenant named in the body",
    "404": "No such resource, or one of a tenant the key cannot see (indistinguishable)",
    "409": "The stored revision is not the one the change was based on (or the connector cannot be polled)",
    "422": "The document or value is not valid",
}
_QUERY = {
    "listConnectors": [("tenant", "Operator keys: only this tenant's connectors")],
    "serviceMap": [("tenant", "Operator keys: the tenant of the map (required)")],
    "deleteConnector": [
        ("purge", "true: delete at once and wipe the store secrets only this connector used (no restore)"),
        ("wipeSecrets", "the former name of purge"),
    ],
    "listEvents": [
        ("tenant", "Operator keys: only this tenant's events"),
        ("connector", "Only this connector's events"),
        ("subject", "A subject pattern under hub.events.<tenant>."),
        ("type", "An event type glob, e.g. github.pull_*"),
        ("since", "Stored at or after: RFC 3339, or a duration back from now (15m)"),
        ("until", "Stored before: RFC 3339, or a duration back from now"),
        ("id", "An event id"),
        ("order", "newest (default) or oldest"),
        ("cursor", "The nextCursor of the previous page"),
        ("limit", "Events per page, 1 to 500 (default 50)"),
    ],
    "listRejected": [
        ("tenant", "Operator keys: only this tenant's"),
        ("connector", "Only this connector's"),
        ("reason", "Only this refusal reason or error"),
        ("since", "Received at or after"),
        ("until", "Received before"),
        ("cursor", "The nextCursor of the previous page"),
        ("limit", "Per page, 1 to 200 (default 50)"),
    ],
    "retryAllRejected": [
        ("tenant", "Operator keys: only this tenant's (none: every tenant)"),
        ("connector", "Only this connector's"),
        ("reason", "Only this refusal reason or error"),
        ("since", "Received at or after"),
        ("until", "Received before"),
    ],
    "listJobs": [
        ("state", "pending, running, succeeded, failed or canceled"),
        ("kind", "replay, redrive or retry-rejected"),
    ],
    "listDeadLetters": [
        ("tenant", "Operator keys: only this tenant's"),
        ("connector", "Only this connector's"),
        ("route", "Only this route's"),
        ("class", "The failure class: transient, permanent, policy_denied, quota_exceeded, validation_error"),
        ("since", "Failed at or after"),
        ("until", "Failed before"),
        ("cursor", "The nextCursor of the previous page"),
        ("limit", "Per page"),
    ],
}


@functools.cache
def openapi(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    """The document for these endpoints (built once: the models' JSON schemas are not free)."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "connector-hub admin API", "version": "1"},
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "A key from `connector-hub keys create`"}
            },
            "schemas": _schemas(),
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAMETER.findall(endpoint.path)
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in _QUERY.get(endpoint.operation_id, [])
    ]
    if endpoint.method in ("PUT", "DELETE") and endpoint.path.startswith("/v1/connectors/"):
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "A revision (ETag)",
            }
        )
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {}}}}
    if endpoint.operation_id == "putConnector":
        responses["201"] = {"description": "Created", "content": {"application/json": {}}}
    if endpoint.operation_id == "pollConnector":
        responses = {"202": {"description": "Due now", "content": {"application/json": {}}}}
    for status, text in _ERROR_STATUSES.items():
        responses[status] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "description": f"Needs the scope `{endpoint.scope}`." if endpoint.scope else "Needs any valid key.",
        "parameters": parameters,
        "responses": responses,
    }
    if endpoint.request_body is not None:
        schema = {"$ref": f"#/components/schemas/{endpoint.request_body}"}
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return operation


def _schemas() -> dict[str, Any]:
    connector = ConnectorDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    policy = PolicyDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = {**connector.pop("$defs", {}), **policy.pop("$defs", {})}
    schemas["Connector"] = connector
    schemas["Policy"] = policy
    document = {"oneOf": [{"$ref": "#/components/schemas/Connector"}, {"$ref": "#/components/schemas/Policy"}]}
    schemas["Documents"] = {
        "oneOf": [
            document,
            {"type": "array", "items": document},
            {
                "type": "object",
                "properties": {"documents": {"type": "array", "items": document}},
                "required": ["documents"],
            },
        ]
    }
    schemas["SecretValue"] = {
        "type": "object",
        "description": "Exactly one of value (text) and valueBase64 (bytes); never returned",
        "properties": {"value": {"type": "string"}, "valueBase64": {"type": "string", "contentEncoding": "base64"}},
    }
    schemas["Error"] = {
        "type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "requestId": {"type": "string"}},
        "required": ["code", "message", "requestId"],
    }
    return schemas
