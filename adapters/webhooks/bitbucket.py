"""Bitbucket Cloud (and Data Center) webhooks: `X-Hub-Signature: sha256=<hex>` over the raw body.

The header has the name of GitHub's legacy SHA-1 header, but Bitbucket's value is HMAC-SHA256 (the
`sha256=` prefix names the algorithm). A webhook without a secret is sent unsigned and refused here.
Bitbucket signs no timestamp, so replay protection rests on the `X-Request-UUID` dedupe key.
"""

from __future__ import annotations

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
from adapters.fields import first_time, nested_str, required_header
from adapters.signing import after_prefix, body_sha256, decode_hex, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_HEADER = "X-Event-Key"
REQUEST_HEADER = "X-Request-UUID"
DATA_CENTER_REQUEST_HEADER = "X-Request-Id"
PREFIX = "sha256="


class BitbucketAdapter(WebhookAdapter[NoOptions]):
    """Bitbucket Cloud repository webhooks (Data Center's signed webhooks use the same header)."""

    name: ClassVar[str] = "bitbucket"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook secret as UTF-8",
        signed_content="the raw body",
        encoding="lowercase hex, prefixed sha256=",
        timestamp=None,
        dedupe_key=f"{REQUEST_HEADER} header (Data Center: {DATA_CENTER_REQUEST_HEADER}), else sha256 of the body",
        delivery_timeout_s=10.0,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-Hub-Signature` (SHA-256, despite the name) against every secret."""
        header = after_prefix(request.signed_header(SIGNATURE_HEADER, self.name), PREFIX, SIGNATURE_HEADER, self.name)
        candidate = decode_hex(header, 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `bitbucket.<X-Event-Key with : as .>`, subject = the repository."""
        body = request.json_object()
        event = required_header(request, EVENT_HEADER)
        delivery = request.header(REQUEST_HEADER) or request.header(DATA_CENTER_REQUEST_HEADER)
        return [
            NormalizedEvent(
                id=delivery or body_sha256(request.body),
                type=f"{self.name}.{event.replace(':', '.')}",
                data=orjson.Fragment(request.body),
                subject=_subject(body),
                time=_time(body),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `repo:push` of one commit to `acme/widgets`."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Bitbucket-Webhooks/2.0",
            EVENT_HEADER: "repo:push",
            REQUEST_HEADER: str(uuid.uuid4()),
            "X-Hook-UUID": "{5e1f0c6b-2a43-4f0c-9e5b-7d3ac1b2a9f0}",
            "X-Attempt-Number": "1",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_push_payload(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Hub-Signature: sha256=<hex>`."""
        return with_headers(
            request, {SIGNATURE_HEADER: PREFIX + hmac_digest("sha256", secret.value, request.body).hex()}
        )


def _subject(body: dict[str, Any]) -> str | None:
    """The repository: Cloud's `full_name`, or Data Center's `<project key>/<slug>`."""
    repository = body.get("repository")
    if not isinstance(repository, dict):
        return None
    if isinstance(full_name := repository.get("full_name"), str) and full_name:
        return full_name
    project, slug = repository.get("project"), repository.get("slug")
    key = project.get("key") if isinstance(project, dict) else None
    return f"{key}/{slug}" if isinstance(key, str) and isinstance(slug, str) and key and slug else None


def _time(body: dict[str, Any]) -> datetime | None:
    """Data Center's `date`, else the `updated_on` of a Cloud pull request, issue or comment."""
    owners = ("pullrequest", "issue", "comment")
    return first_time([body.get("date"), *(nested_str(body, owner, "updated_on") for owner in owners)])


def _push_payload(now: float) -> dict[str, Any]:
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    stamp = datetime.fromtimestamp(int(now), UTC).isoformat()
    actor = {
        "display_name": "Ada Lovelace",
        "nickname": "ada",
        "type": "user",
        "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}",
    }
    repository = {
        "type": "repository",
        "full_name": "acme/widgets",
        "name": "widgets",
        "is_private": True,
        "uuid": "{b7e3c9a4-7d5e-4a3f-9c61-2f0e8d4b1a77}",
        "links": {"html": {"href": "https://bitbucket.org/acme/widgets"}},
    }
    commit = {"type": "commit", "hash": sha, "date": stamp, "message": "Fix the build\n", "author": {"user": actor}}
    change = {
        "old": {"type": "branch", "name": "main", "target": {"type": "commit", "hash": "6113728f27ae82c7b1a177c8d03f"}},
        "new": {"type": "branch", "name": "main", "target": commit},
        "created": False,
        "forced": False,
        "closed": False,
        "commits": [commit],
        "truncated": False,
    }
    return {"push": {"changes": [change]}, "actor": actor, "repository": repository}
