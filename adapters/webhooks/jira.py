"""Jira Cloud webhooks with a secret: `X-Hub-Signature: sha256=<hex>` over the raw body.

Admin-registered webhooks (System > WebHooks or the REST API) given a `secret` are signed WebSub
style; webhooks of Connect/OAuth apps are not signed this way and cannot be verified here. Jira
signs no timestamp and does not sign `X-Atlassian-Webhook-Identifier` (the dedupe key, unique
within the site and unchanged across retries), so `verify` hands the hub the matched signature:
a captured request replayed under a new identifier is still a duplicate. `webhookEvent`
(`jira:issue_updated`, `comment_created`) becomes the type without its `jira:` prefix:
`jira.issue_updated`, `jira.comment_created`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from adapters.base import (
    InboundRequest,
    NoOptions,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import PayloadError
from adapters.fields import first_str, unix_time
from adapters.signing import after_prefix, body_sha256, decode_hex, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "X-Hub-Signature"
ID_HEADER = "X-Atlassian-Webhook-Identifier"
PREFIX = "sha256="
SITE = "https://acme.atlassian.net"
_EVENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_-]{1,64}){0,3}")


class JiraAdapter(WebhookAdapter[NoOptions]):
    """Jira Cloud admin webhooks registered with a secret."""

    name: ClassVar[str] = "jira"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook secret as UTF-8",
        signed_content="the raw body",
        encoding="lowercase hex, prefixed sha256=",
        timestamp=None,
        dedupe_key=f"{ID_HEADER} header, else sha256 of the body",
        delivery_timeout_s=20.0,
        accepted_status=200,  # Atlassian counts 200 and 204 as delivered (Cloud Fortified delivery metric)
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-Hub-Signature: sha256=<hex>` against every secret."""
        header = after_prefix(request.signed_header(SIGNATURE_HEADER, self.name), PREFIX, SIGNATURE_HEADER, self.name)
        candidate = decode_hex(header, 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `jira.<webhookEvent without jira:>`, subject = the issue (else project) key."""
        body = request.json_object()
        return [
            NormalizedEvent(
                id=request.header(ID_HEADER) or body_sha256(request.body),
                type=f"{self.name}.{_event_type(body.get('webhookEvent'))}",
                data=orjson.Fragment(request.body),
                subject=first_str(body, ("issue", "key"), ("project", "key")),  # ENG-42, else ENG
                time=unix_time(body.get("timestamp"), unit="ms"),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `jira:issue_updated` webhook: ENG-42 moved to In Progress."""
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "User-Agent": "Atlassian Webhook HTTP Client",
            ID_HEADER: str(uuid.uuid4()),
            "X-Atlassian-Webhook-Flow": "Primary",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_issue_updated(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`."""
        return with_headers(
            request, {SIGNATURE_HEADER: PREFIX + hmac_digest("sha256", secret.value, request.body).hex()}
        )


def _event_type(value: Any) -> str:
    """`jira:issue_updated` -> `issue_updated`; other `:` become `.`; anything unexpected is refused."""
    if not isinstance(value, str) or not _EVENT_NAME.fullmatch(value):
        raise PayloadError("invalid_event", "webhookEvent is missing or not a Jira event name")
    return value.removeprefix("jira:").replace(":", ".")


def _issue_updated(now: float) -> dict[str, Any]:
    user = {
        "self": f"{SITE}/rest/api/2/user?accountId=5b10a2844c20165700ede21g",
        "accountId": "5b10a2844c20165700ede21g",
        "displayName": "Ada Lovelace",
        "active": True,
        "timeZone": "Europe/London",
        "accountType": "atlassian",
    }
    return {
        "timestamp": int(now * 1000),
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "user": user,
        "issue": {
            "id": "10042",
            "self": f"{SITE}/rest/api/2/10042",
            "key": "ENG-42",
            "fields": {
                "summary": "Retry failed deliveries with backoff",
                "issuetype": {"id": "10001", "name": "Task"},
                "project": {"id": "10000", "key": "ENG", "name": "Engineering"},
                "status": {"id": "3", "name": "In Progress", "statusCategory": {"key": "indeterminate"}},
                "priority": {"id": "3", "name": "Medium"},
                "assignee": user,
                "updated": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            },
        },
        "changelog": {
            "id": str(10000 + uuid.uuid4().int % 90000),
            "items": [
                {
                    "field": "status",
                    "fieldtype": "jira",
                    "fieldId": "status",
                    "from": "10000",
                    "fromString": "To Do",
                    "to": "3",
                    "toString": "In Progress",
                }
            ],
        },
    }
