"""GitHub webhooks: `X-Hub-Signature-256: sha256=<hex>` over the raw body, `ping` handshake.

Only the SHA-256 header is verified; the legacy SHA-1 `X-Hub-Signature` is never a fallback.
GitHub signs no timestamp, so replay protection rests on the `X-GitHub-Delivery` dedupe key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

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
from adapters.fields import first_str, required_header
from adapters.signing import after_prefix, body_sha256, decode_hex, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
PREFIX = "sha256="
PING_REPLY = HandshakeReply(200, b'{"handshake":"ping"}', "application/json")


class GitHubAdapter(WebhookAdapter[NoOptions]):
    """GitHub repository, organization and App webhooks."""

    name: ClassVar[str] = "github"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the webhook secret as UTF-8",
        signed_content="the raw body",
        encoding="lowercase hex, prefixed sha256=",
        timestamp=None,
        dedupe_key=f"{DELIVERY_HEADER} header, else sha256 of the body",
        handshake=f"{EVENT_HEADER}: ping -> 200 {PING_REPLY.body.decode()}",
        delivery_timeout_s=10.0,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-Hub-Signature-256` against every secret (no SHA-1 fallback)."""
        header = after_prefix(request.signed_header(SIGNATURE_HEADER, self.name), PREFIX, SIGNATURE_HEADER, self.name)
        candidate = decode_hex(header, 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Answer the `ping` event GitHub sends when a hook is created."""
        return PING_REPLY if request.header(EVENT_HEADER) == "ping" else None

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `github.<event>[.<action>]`, subject = the repository or organization."""
        body = request.json_object()
        event = required_header(request, EVENT_HEADER)
        action = body.get("action")
        event_type = f"github.{event}.{action}" if isinstance(action, str) and action else f"github.{event}"
        return [
            NormalizedEvent(
                id=request.header(DELIVERY_HEADER) or body_sha256(request.body),
                type=event_type,
                data=orjson.Fragment(request.body),
                subject=first_str(body, ("repository", "full_name"), ("organization", "login")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A `push` event to `octo-org/hello-world`."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/044aadd",
            EVENT_HEADER: "push",
            DELIVERY_HEADER: str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "292430182",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": "79929171",
        }
        return TestRequest(headers=headers, body=orjson.dumps(_push_payload(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add both headers GitHub sends: `X-Hub-Signature-256` and the legacy SHA-1 one."""
        return with_headers(
            request,
            {
                LEGACY_SIGNATURE_HEADER: "sha1=" + hmac_digest("sha1", secret.value, request.body).hex(),
                SIGNATURE_HEADER: PREFIX + hmac_digest("sha256", secret.value, request.body).hex(),
            },
        )


def _push_payload(now: float) -> dict[str, Any]:
    sha = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    return {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": sha,
        "repository": {
            "id": 79929171,
            "name": "hello-world",
            "full_name": "octo-org/hello-world",
            "private": False,
            "owner": {"login": "octo-org", "id": 6811672, "type": "Organization"},
            "default_branch": "main",
            "pushed_at": int(now),
        },
        "pusher": {"name": "monalisa", "email": "monalisa@example.com"},
        "sender": {"login": "monalisa", "id": 2, "type": "User"},
        "head_commit": {"id": sha, "message": "Fix the build", "author": {"name": "Mona Lisa", "username": "monalisa"}},
    }
