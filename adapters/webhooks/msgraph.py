"""Microsoft Graph change notifications (webhooks): `clientState` checks, `validationToken` handshake.

Graph signs nothing. Each notification in a batch (`{"value": [...]}`) carries the `clientState`
given when the subscription was created; every one must equal one of the connector's secrets
(compared in constant time). The `clientState` authenticates the sender, not the body.

Graph validates a notification URL with an unsigned request `?validationToken=<url-encoded token>`
(a POST with an empty body; a GET is accepted too), answered within 10 s with 200, `text/plain` and
the URL-decoded token. `verify` lets through exactly that shape without a secret, and nothing else.
The JWTs of rich notifications (`validationTokens`) are not checked: that needs Microsoft's signing
keys, fetched over the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import orjson

from adapters.base import (
    HandshakeReply,
    InboundRequest,
    NoOptions,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import PayloadError, SignatureError
from adapters.signing import matching_credential

VALIDATION_PARAM = "validationToken"
CLIENT_STATE = "clientState"
MAX_CLIENT_STATE = 255
"""Graph's limit on a subscription's `clientState` (characters)."""
MAX_VALIDATION_TOKEN = 2048
MAX_QUERY_FIELDS = 64


class MicrosoftGraphAdapter(WebhookAdapter[NoOptions]):
    """Microsoft Graph change and lifecycle notifications delivered to a webhook."""

    name: ClassVar[str] = "msgraph"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=f"none: {CLIENT_STATE} in each notification of the body",
        algorithm=f"{CLIENT_STATE} equals the connector's secret, compared in constant time (no signature)",
        signed_content="nothing: the clientState authenticates the sender, not the body",
        encoding="the clientState string as is (at most 255 characters)",
        timestamp=None,
        dedupe_key="per notification: subscriptionId + notification id, else subscriptionId + changeType + "
        "resource + sha256 of the notification",
        handshake=f"?{VALIDATION_PARAM}=<token>, empty body -> 200 text/plain, the URL-decoded token",
        delivery_timeout_s=3.0,
        replay_protection="the dedupe key only: clientState is the same for every notification and Graph "
        "signs nothing (TLS only)",
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """A clientState: 1 to 255 characters of UTF-8."""
        try:
            length = len(secret.value.decode())
        except UnicodeDecodeError:
            raise ValueError(f"secret {secret.key_id}: a clientState must be UTF-8 text") from None
        if not 0 < length <= MAX_CLIENT_STATE:
            raise ValueError(f"secret {secret.key_id}: a clientState has 1 to {MAX_CLIENT_STATE} characters")

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """A validation request of exactly the documented shape, or notifications whose every clientState matches."""
        if _validation_token(request, self.name) is not None:
            return Verification(scheme="msgraph-validation", key_id=None, signed_at=None)
        if request.method != "POST":
            raise SignatureError(self.name, "missing_header", f"a {request.method} without {VALIDATION_PARAM}")
        key_ids: list[str] = []
        for index, item in enumerate(_notifications(request, self.name)):
            state = item.get(CLIENT_STATE)
            if not isinstance(state, str):
                raise SignatureError(self.name, "missing_header", f"notification {index} has no {CLIENT_STATE}")
            key_id = matching_credential(self.name, secrets, state.encode())
            if key_id not in key_ids:
                key_ids.append(key_id)
        return Verification(scheme="client-state", key_id=",".join(key_ids), signed_at=None)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Echo the URL-decoded validation token as text/plain; anything else is no handshake."""
        token = _validation_token(request, self.name)
        return None if token is None else HandshakeReply(200, token.encode(), "text/plain")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event per notification: `msgraph.<changeType>` or `msgraph.lifecycle.<lifecycleEvent>`."""
        try:
            items = _notifications(request, self.name)
        except SignatureError:
            raise PayloadError("invalid_json", "the body is not a notification collection") from None
        return [self._event(item) for item in items]

    def sample(self, now: float) -> TestRequest:
        """Two notifications of one subscription: a new message in an inbox, and its update."""
        expires = (datetime.fromtimestamp(int(now), UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
        items = [_message_notification(change, expires, index) for index, change in enumerate(("created", "updated"))]
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return TestRequest(headers=headers, body=orjson.dumps({"value": items}))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Set every notification's `clientState` to the secret, as Graph sends it (other bodies: unchanged)."""
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return request
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return request
        state = secret.value.decode()
        body["value"] = [{**item, CLIENT_STATE: state} if isinstance(item, dict) else item for item in items]
        return TestRequest(headers=dict(request.headers), body=orjson.dumps(body))

    def _event(self, item: dict[str, Any]) -> NormalizedEvent:
        change, lifecycle = item.get("changeType"), item.get("lifecycleEvent")
        if isinstance(change, str) and change:
            event_type = f"{self.name}.{change}"
        elif isinstance(lifecycle, str) and lifecycle:
            event_type = f"{self.name}.lifecycle.{lifecycle}"
        else:
            raise PayloadError("invalid_event", "a notification has neither changeType nor lifecycleEvent")
        resource = item.get("resource")
        return NormalizedEvent(
            id=_notification_id(item),
            type=event_type,
            data=item,
            subject=resource if isinstance(resource, str) and resource else None,
        )


def _validation_token(request: InboundRequest, provider: str) -> str | None:
    """The URL-decoded token of a validation request, None if the URL has no `validationToken`.

    A URL that has one must be exactly a validation request (else a SignatureError): GET or POST,
    one non-empty, printable token of bounded length, and an empty body.
    """
    query = urlsplit(request.url).query
    try:
        fields = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise SignatureError(provider, "malformed_signature", "the query string cannot be decoded") from None
    tokens = [value for key, value in fields if key == VALIDATION_PARAM]
    if not tokens:
        return None
    if len(tokens) != 1 or request.method not in ("GET", "POST") or request.body:
        raise SignatureError(provider, "malformed_signature", "not a validation request: one token, no body")
    token = tokens[0]
    if not 0 < len(token) <= MAX_VALIDATION_TOKEN or not token.isprintable():
        raise SignatureError(provider, "malformed_signature", f"{VALIDATION_PARAM} is empty, too long or unprintable")
    return token


def _notifications(request: InboundRequest, provider: str) -> list[dict[str, Any]]:
    """The `value` array of a change notification collection, as objects, else a SignatureError."""
    try:
        body = request.json()
    except PayloadError:
        body = None
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or not all(isinstance(item, dict) for item in items):
        raise SignatureError(provider, "malformed_signature", "the body is not a notification collection")
    return items


def _notification_id(item: dict[str, Any]) -> str:
    """Stable across Graph's resends of the same notification, distinct between two changes."""
    subscription = item.get("subscriptionId")
    prefix = subscription if isinstance(subscription, str) and subscription else "-"
    if isinstance(notification := item.get("id"), str) and notification:
        return f"{prefix}:{notification}"
    digest = hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()
    change = item.get("changeType") or item.get("lifecycleEvent")
    resource = item.get("resource")
    return ":".join(str(part) for part in (prefix, change, resource, digest))


def _message_notification(change: str, expires: str, index: int) -> dict[str, Any]:
    user, message = "5b5f0d65-3d8e-4f0b-9a3c-0a0c6a6c9b11", "AAMkAGUwNjQ4ZjIxAAA="
    resource = f"Users/{user}/Messages/{message}"
    return {
        "id": f"lsgTZMr9KwAAA{index}",
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": expires,
        CLIENT_STATE: "",
        "changeType": change,
        "resource": resource,
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": resource,
            "@odata.etag": f'W/"CQAAABYAAADkrWGo7bouTKlsgTZMr9KwAAAUWRH{index}"',
            "id": message,
        },
    }
