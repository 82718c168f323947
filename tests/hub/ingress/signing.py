"""Signed requests per provider for the ingress integration tests, built the providers' own way.

Stripe is signed with the stripe SDK (`stripe.WebhookSignature`), Standard Webhooks with the
`standardwebhooks` library (`Webhook(secret).sign`), GitHub with plain HMAC-SHA256 as GitHub's
docs describe, and the generic HMAC adapter with plain HMAC over its configured template. The
adapters' own `sign()` is never used here, so these requests are an independent oracle.

The SDKs sign text, so a body that is not UTF-8 (hostile-input tests) is signed with the same
documented scheme by hand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import stripe
import yaml
from standardwebhooks import Webhook

TENANT = "acme"


# --- per-provider signing ---------------------------------------------------------------------


def github_signature(body: bytes, secret: str) -> str:
    """`X-Hub-Signature-256` as GitHub computes it: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(
    body: bytes, secret: str, *, event: str = "push", delivery: str | None = None, **extra: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": github_signature(body, secret),
        **extra,
    }


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature: t=..,v1=..` from the stripe SDK (by hand, same scheme, for non-UTF-8 bodies)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={mac}"
    return str(stripe.WebhookSignature.generate_signature_header(text, secret, timestamp))


def stripe_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": stripe_signature(body, secret, timestamp),
    }


def standard_webhooks_signature(body: bytes, secret: str, msg_id: str, timestamp: int) -> str:
    """`webhook-signature` from the standardwebhooks library (by hand, same scheme, for non-UTF-8)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        return "v1," + base64.b64encode(mac).decode()
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), text)


def standard_webhooks_headers(
    body: bytes, secret: str, *, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or "msg_" + secrets.token_hex(12)
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_webhooks_signature(body, secret, msg_id, timestamp),
    }


HMAC_OPTIONS: dict[str, Any] = {
    "header": "X-Signature",
    "prefix": "sha256=",
    "algorithm": "sha256",
    "encoding": "hex",
    "timestampHeader": "X-Timestamp",
    "signedContent": "{id}.{timestamp}.{body}",
    "idHeader": "X-Request-Id",
    "typePath": "type",
    "typePrefix": "acme",
}


def hmac_headers(
    body: bytes, secret: str, *, request_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers for a connector with HMAC_OPTIONS: `sha256=<hex>` over `{id}.{timestamp}.{body}`."""
    request_id = request_id or str(uuid.uuid4())
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{request_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Request-Id": request_id,
        "X-Timestamp": str(timestamp),
        "X-Signature": "sha256=" + mac,
    }


# --- secrets ----------------------------------------------------------------------------------


def new_secret(provider: str) -> str:
    """A fresh secret in the provider's format."""
    if provider == "stripe":
        return "whsec_" + secrets.token_hex(16)
    if provider == "standard-webhooks":
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_hex(20)


# --- connector specs --------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretSpec:
    """One secret entry of a connector: the key id recorded as `hubkeyid` and its env variable."""

    key_id: str
    env: str
    value: str


def connector_doc(
    name: str,
    provider: str,
    secret_specs: Sequence[SecretSpec],
    *,
    tenant: str = TENANT,
    enabled: bool = True,
    webhook: dict[str, Any] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "webhook",
        "provider": provider,
        "enabled": enabled,
        "secrets": [{"name": s.key_id, "secretRef": {"source": "env", "name": s.env}} for s in secret_specs],
    }
    if webhook:
        spec["webhook"] = webhook
    return {"apiVersion": "hub/v1", "kind": "Connector", "metadata": {"name": name, "tenant": tenant}, "spec": spec}


def specs_yaml(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


# --- a uniform view of the four providers -----------------------------------------------------


def _stripe_body(event_id: str, now: int) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": now,
            "type": "invoice.paid",
            "livemode": False,
            "data": {"object": {"id": "in_1NG8Dt2eZvKYlo2C", "object": "invoice", "customer": "cus_NeZwdNtLEOXuvB"}},
        }
    )


def _github_body(event_id: str, now: int) -> bytes:
    return orjson.dumps(
        {
            "action": "opened",
            "number": 7,
            "pull_request": {"id": 1, "title": "Fix the build", "head": {"sha": event_id}},
            "repository": {"id": 79929171, "full_name": "octo-org/hello-world"},
            "sender": {"login": "monalisa"},
        }
    )


def _standard_body(event_id: str, now: int) -> bytes:
    return orjson.dumps(
        {
            "type": "user.created",
            "timestamp": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z"),
            "data": {"id": "user_" + event_id, "email": "ada@example.com"},
        }
    )


def _hmac_body(event_id: str, now: int) -> bytes:
    return orjson.dumps({"type": "order.created", "occurredAt": now, "data": {"id": event_id, "amount": 42}})


@dataclass(frozen=True)
class Provider:
    """One provider as the tests drive it: a connector, a realistic body and its signed headers."""

    name: str
    connector: str
    expected_type: str
    signs_timestamp: bool
    signature_header: str
    make_body: Callable[[str, int], bytes]
    options: dict[str, Any] = field(default_factory=dict)

    def doc(self, secret_specs: Sequence[SecretSpec], *, name: str | None = None, **webhook: Any) -> dict[str, Any]:
        settings = dict(webhook)
        if self.options:
            settings["options"] = self.options
        return connector_doc(name or self.connector, self.name, secret_specs, webhook=settings or None)

    def new_id(self) -> str:
        return {"stripe": "evt_", "standard-webhooks": "msg_"}.get(self.name, "") + secrets.token_hex(12)

    def body(self, event_id: str, now: int | None = None) -> bytes:
        return self.make_body(event_id, int(time.time()) if now is None else now)

    def headers(self, body: bytes, secret: str, *, event_id: str, timestamp: int | None = None) -> dict[str, str]:
        """Signed headers; `event_id` goes where the provider carries the delivery id outside the body."""
        if self.name == "github":
            return github_headers(body, secret, event="pull_request", delivery=event_id)
        if self.name == "stripe":
            return stripe_headers(body, secret, timestamp)
        if self.name == "standard-webhooks":
            return standard_webhooks_headers(body, secret, msg_id=event_id, timestamp=timestamp)
        return hmac_headers(body, secret, request_id=event_id, timestamp=timestamp)

    def signed(self, secret: str, *, event_id: str | None = None, timestamp: int | None = None) -> Delivery:
        event_id = event_id or self.new_id()
        body = self.body(event_id, timestamp)
        return Delivery(event_id, body, self.headers(body, secret, event_id=event_id, timestamp=timestamp))


@dataclass(frozen=True)
class Delivery:
    event_id: str
    body: bytes
    headers: dict[str, str]


GITHUB = Provider("github", "gh", "github.pull_request.opened", False, "X-Hub-Signature-256", _github_body)
STRIPE = Provider("stripe", "st", "stripe.invoice.paid", True, "Stripe-Signature", _stripe_body)
STANDARD = Provider(
    "standard-webhooks", "sw", "standard-webhooks.user.created", True, "webhook-signature", _standard_body
)
HMAC = Provider("hmac", "hm", "acme.order.created", True, "X-Signature", _hmac_body, HMAC_OPTIONS)
PROVIDERS = (GITHUB, STRIPE, STANDARD, HMAC)
TIMESTAMPED = tuple(p for p in PROVIDERS if p.signs_timestamp)


def provider_param(providers: Sequence[Provider] = PROVIDERS) -> dict[str, Any]:
    """Keyword arguments for `pytest.mark.parametrize("provider", ...)` with readable ids."""
    return {"argvalues": list(providers), "ids": [p.name for p in providers]}
