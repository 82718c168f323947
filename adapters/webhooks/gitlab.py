"""GitLab webhooks: the secret token in `X-Gitlab-Token`, or (GitLab 19+) a signing token.

Mode `token` (default): GitLab sends the webhook's secret token as is; it is compared in constant
time. It authenticates the sender but not the body, and signs no timestamp.

Mode `standard-webhooks`: a signing token `whsec_<base64 of 32 bytes>` makes GitLab add
`webhook-signature: v1,<base64 HMAC-SHA256("{webhook-id}.{webhook-timestamp}.{body}")>`, the Standard
Webhooks scheme; verification is the `standard-webhooks` adapter's, by composition. `webhook-id` is
GitLab's `Idempotency-Key`, stable across retries, and it is signed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import (
    InboundRequest,
    NormalizedEvent,
    SchemeInfo,
    SigningSecret,
    TestRequest,
    Verification,
    WebhookAdapter,
)
from adapters.errors import PayloadError, SignatureError
from adapters.fields import first_str, first_time, iso_time, nested_str
from adapters.signing import body_sha256, matching_credential, with_headers
from adapters.webhooks.standard_webhooks import ID_HEADER, SECRET_PREFIX, StandardWebhooksAdapter

TOKEN_HEADER = "X-Gitlab-Token"  # noqa: S105 - a header name, not a secret
EVENT_HEADER = "X-Gitlab-Event"
EVENT_UUID_HEADER = "X-Gitlab-Event-UUID"
IDEMPOTENCY_HEADER = "Idempotency-Key"
STANDARD_WEBHOOKS = "standard-webhooks"

_UTC_SUFFIX = re.compile(r"(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}) (UTC|[+-]\d{4})")
"""GitLab's older `2013-12-03 17:23:34 UTC` / `+0100` time format, next to ISO 8601."""


class GitLabOptions(BaseModel):
    """How the connector's GitLab webhook authenticates its deliveries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["token", "standard-webhooks"] = Field(
        "token",
        description=(
            "token: the secret token in X-Gitlab-Token; standard-webhooks: a whsec_ signing token "
            "(GitLab 19+) that signs webhook-id, webhook-timestamp and the body."
        ),
    )


class GitLabAdapter(WebhookAdapter[GitLabOptions]):
    """GitLab project, group and system hooks."""

    name: ClassVar[str] = "gitlab"
    options_model: ClassVar[type[BaseModel]] = GitLabOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=f"{TOKEN_HEADER} (mode token) or webhook-signature (mode standard-webhooks)",
        secret_headers=(TOKEN_HEADER,),
        algorithm=(
            "token: the secret token itself, compared in constant time; standard-webhooks: HMAC-SHA256, "
            "key = the base64-decoded part of the whsec_ signing token"
        ),
        signed_content=(
            "token: nothing (the token authenticates the sender, not the body); standard-webhooks: "
            "{webhook-id}.{webhook-timestamp}.{raw body}, the timestamp checked against the replay window"
        ),
        encoding="token: plain text; standard-webhooks: base64 in v1,<sig> items",
        timestamp=None,
        dedupe_key=(
            f"{IDEMPOTENCY_HEADER} header, else {EVENT_UUID_HEADER} (mode token), or webhook-id = "
            f"{IDEMPOTENCY_HEADER} (mode standard-webhooks), else sha256 of the body"
        ),
        delivery_timeout_s=10.0,
        replay_protection="token mode: the dedupe key only (the token is the same for every request); "
        "standard-webhooks mode: the signed timestamp, then the signed webhook-id",
    )

    def __init__(self, options: GitLabOptions) -> None:
        super().__init__(options)
        self._signer = StandardWebhooksAdapter.configure()

    @property
    def _standard(self) -> bool:
        return self.options.mode == STANDARD_WEBHOOKS

    def check_secret(self, secret: SigningSecret) -> None:
        """Token mode: any non-empty token. Standard Webhooks mode: a `whsec_` signing token."""
        super().check_secret(secret)
        if self._standard:
            if not secret.value.startswith(SECRET_PREFIX):
                raise ValueError(f"secret {secret.key_id}: a GitLab signing token starts with whsec_")
            self._signer.check_secret(secret)

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Token mode: the token equals a secret. Standard Webhooks mode: a `v1` signature matches."""
        if self._standard:
            try:
                return self._signer.verify(request, secrets)
            except SignatureError as exc:
                raise SignatureError(self.name, exc.reason, exc.detail) from None
        token = request.signed_header(TOKEN_HEADER, self.name)
        key_id = matching_credential(self.name, secrets, token.encode())
        return Verification(scheme="token", key_id=key_id, signed_at=None)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `gitlab.<object_kind>` (system hooks: `event_name`), subject = the project."""
        body = request.json_object()
        kind = body.get("object_kind") or body.get("event_name")
        if not isinstance(kind, str) or not kind:
            raise PayloadError("invalid_event", "the event has neither object_kind nor event_name")
        if self._standard:
            delivery = request.header(ID_HEADER)
        else:  # the key GitLab keeps across retries; the event UUID is unique per webhook, older GitLab sends only it
            delivery = request.header(IDEMPOTENCY_HEADER) or request.header(EVENT_UUID_HEADER)
        return [
            NormalizedEvent(
                id=delivery or body_sha256(request.body),
                type=f"{self.name}.{kind}",
                data=orjson.Fragment(request.body),
                subject=first_str(body, ("project", "path_with_namespace"), ("path_with_namespace",)),
                time=_time(body),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `Push Hook` of one commit to `acme/widgets`, with GitLab's delivery headers."""
        idempotency_key = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitLab/19.0.0",
            EVENT_HEADER: "Push Hook",
            EVENT_UUID_HEADER: str(uuid.uuid4()),
            "X-Gitlab-Webhook-UUID": "0c7a3d7e-1f4b-4c55-9a7e-9b3f2d1e6a10",
            "X-Gitlab-Instance": "https://gitlab.com",
            IDEMPOTENCY_HEADER: idempotency_key,
            ID_HEADER: idempotency_key,
        }
        return TestRequest(headers=headers, body=orjson.dumps(_push_payload(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Token mode: add `X-Gitlab-Token`. Standard Webhooks mode: add the Standard Webhooks headers."""
        if self._standard:
            return self._signer.sign(request, secret, now)
        return with_headers(request, {TOKEN_HEADER: secret.value.decode()})


def _time(body: dict[str, Any]) -> datetime | None:
    """`object_attributes.updated_at` (or `created_at`), else a system hook's `created_at`."""
    attributes = ("object_attributes", "updated_at"), ("object_attributes", "created_at"), ("created_at",)
    return first_time((nested_str(body, *path) for path in attributes), _parse_time)


def _parse_time(value: str | None) -> datetime | None:
    """ISO 8601, or GitLab's older `2013-12-03 17:23:34 UTC` / `+0100` form."""
    if value is not None and (match := _UTC_SUFFIX.fullmatch(value)):
        day, clock, zone = match.groups()
        value = f"{day}T{clock}{'+00:00' if zone == 'UTC' else zone}"
    return iso_time(value)


def _push_payload(now: float) -> dict[str, Any]:
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    stamp = (datetime.fromtimestamp(int(now), UTC) - timedelta(seconds=5)).isoformat()
    project = {
        "id": 15,
        "name": "widgets",
        "web_url": "https://gitlab.com/acme/widgets",
        "path_with_namespace": "acme/widgets",
        "default_branch": "main",
        "visibility_level": 0,
    }
    commit = {
        "id": sha,
        "message": "Fix the build\n",
        "title": "Fix the build",
        "timestamp": stamp,
        "url": f"https://gitlab.com/acme/widgets/-/commit/{sha}",
        "author": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "added": [],
        "modified": ["src/build.py"],
        "removed": [],
    }
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
        "after": sha,
        "ref": "refs/heads/main",
        "checkout_sha": sha,
        "user_id": 4,
        "user_name": "Ada Lovelace",
        "user_username": "ada",
        "project_id": 15,
        "project": project,
        "commits": [commit],
        "total_commits_count": 1,
    }
