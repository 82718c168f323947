"""Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{raw body}`.

One request URL may receive Events API callbacks (JSON), slash commands and interactivity
(`application/x-www-form-urlencoded`, interactivity as a JSON `payload=` field); the signature
is over the raw bytes either way (slack_sdk `SignatureVerifier`). `url_verification` is answered
with the bare challenge as `text/plain`, the first form Slack's `url_verification` page documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from secrets import choice, token_hex
from string import ascii_uppercase, digits
from typing import Any, ClassVar
from urllib.parse import parse_qsl

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
from adapters.errors import PayloadError
from adapters.fields import unix_time
from adapters.signing import (
    after_prefix,
    body_sha256,
    decode_hex,
    hmac_digest,
    matching_hmac,
    parse_timestamp,
    with_headers,
)

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
VERSION = "v0"
PREFIX = VERSION + "="
FORM = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 64
SSL_CHECK_REPLY = HandshakeReply(200, b"", "text/plain")
_CHALLENGE = re.compile(r"[\x21-\x7e]{1,256}")
"""Printable ASCII without spaces: what the reply echoes, bounded (Slack's challenges are alphanumeric)."""
_DECIMAL_SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


class SlackAdapter(WebhookAdapter[NoOptions]):
    """Slack apps: Events API, slash commands and interactivity on one signing secret."""

    name: ClassVar[str] = "slack"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the app's signing secret as UTF-8",
        signed_content=f"v0:{{{TIMESTAMP_HEADER}}}:{{raw body}}",
        encoding="lowercase hex, prefixed v0=",
        timestamp=f"{TIMESTAMP_HEADER} header, unix seconds",
        dedupe_key="body event_id (Events API), trigger_id (commands, interactivity), else sha256 of the body",
        handshake="type url_verification -> 200 text/plain <challenge>; form ssl_check=1 -> 200 empty",
        default_replay_window_s=300.0,
        delivery_timeout_s=3.0,
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check `X-Slack-Signature` over `v0:{timestamp}:{body}` against every secret."""
        header = request.signed_header(SIGNATURE_HEADER, self.name)
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        candidate = decode_hex(after_prefix(header, PREFIX, SIGNATURE_HEADER, self.name), 32, self.name)
        signed_at = parse_timestamp(timestamp, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], _signed_content(timestamp, request.body))
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=signed_at)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Echo a `url_verification` challenge; acknowledge a slash command's `ssl_check`."""
        try:
            if _is_form(request):
                return SSL_CHECK_REPLY if _form(request.body).get("ssl_check") == "1" else None
            body = request.json()
        except PayloadError:
            return None  # not a handshake; normalize reports the payload error
        if not isinstance(body, dict) or body.get("type") != "url_verification":
            return None
        challenge = body.get("challenge")
        if not isinstance(challenge, str) or not _CHALLENGE.fullmatch(challenge):
            raise PayloadError("invalid_event", "url_verification carries no usable challenge")
        return HandshakeReply(200, challenge.encode("ascii"), "text/plain")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: Events API `slack.<event.type>[.<subtype>]`, else `slack.<payload type>`."""
        if not _is_form(request):
            return [_events_api(request)]
        fields = _form(request.body)
        if "payload" in fields:
            return [_interaction(request, fields["payload"])]
        if not fields.get("command"):
            raise PayloadError("invalid_event", "a form body is neither a slash command nor an interaction")
        return [
            NormalizedEvent(
                id=fields.get("trigger_id") or body_sha256(request.body),
                type="slack.slash_command",
                data=fields,
                subject=fields.get("channel_id") or fields.get("user_id") or fields.get("team_id") or None,
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """An Events API `app_mention` callback."""
        headers = {"Content-Type": "application/json", "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
        return TestRequest(headers=headers, body=orjson.dumps(_app_mention(now)))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Slack-Request-Timestamp: <int(now)>` and `X-Slack-Signature: v0=<hex>`."""
        timestamp = str(int(now))
        signature = PREFIX + hmac_digest("sha256", secret.value, _signed_content(timestamp, request.body)).hex()
        return with_headers(request, {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature})


def _signed_content(timestamp: str, body: bytes) -> bytes:
    return f"{VERSION}:{timestamp}:".encode("ascii") + body


def _is_form(request: InboundRequest) -> bool:
    content_type = request.header("Content-Type") or ""
    return content_type.partition(";")[0].strip().lower() == FORM


def _form(body: bytes) -> dict[str, str]:
    """A form body as a dict; malformed, non-UTF-8, repeated or too many fields are a PayloadError."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        raise PayloadError("invalid_form", "the body is not a valid UTF-8 form") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise PayloadError("invalid_form", "a form field is repeated")
    return fields


def _events_api(request: InboundRequest) -> NormalizedEvent:
    body = request.json_object()
    outer = body.get("type")
    if not isinstance(outer, str) or not outer:
        raise PayloadError("invalid_event", "the event has no string 'type'")
    event = body.get("event")
    if outer == "event_callback":
        if not isinstance(event, dict) or not isinstance(inner := event.get("type"), str) or not inner:
            raise PayloadError("invalid_event", "an event_callback has no event.type")
        subtype = event.get("subtype")
        event_type = f"slack.{inner}.{subtype}" if isinstance(subtype, str) and subtype else f"slack.{inner}"
    else:
        event_type, event = f"slack.{outer}", {}
    event_id = body.get("event_id")
    return NormalizedEvent(
        id=event_id if isinstance(event_id, str) and event_id else body_sha256(request.body),
        type=event_type,
        data=orjson.Fragment(request.body),
        subject=_id_of(event, "channel", "item", "user") or _id_of(body, "team_id"),
        time=_unix_time(body.get("event_time")),
    )


def _interaction(request: InboundRequest, payload: str) -> NormalizedEvent:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise PayloadError("invalid_json", "the payload field is not JSON") from None
    if not isinstance(data, dict) or not isinstance(kind := data.get("type"), str) or not kind:
        raise PayloadError("invalid_event", "the interaction payload has no string 'type'")
    trigger_id = data.get("trigger_id")
    actions = data.get("actions")
    first_action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    return NormalizedEvent(
        id=trigger_id if isinstance(trigger_id, str) and trigger_id else body_sha256(request.body),
        type=f"slack.{kind}",
        data=data,
        subject=_id_of(data, "channel", "user", "team"),
        time=_unix_time(data.get("action_ts") or first_action.get("action_ts")),
    )


def _id_of(container: dict[str, Any], *keys: str) -> str | None:
    """The first of `keys` that is a non-empty string, an object's `id`, or (for `item`) its `channel`."""
    for key in keys:
        value = container.get(key)
        if isinstance(value, dict):
            value = value.get("channel" if key == "item" else "id")
        if isinstance(value, str) and value:
            return value
    return None


def _unix_time(value: Any) -> datetime | None:
    """Unix seconds as an integer (`event_time`) or a decimal string (`action_ts`: `1548426417.840180`)."""
    if isinstance(value, str) and _DECIMAL_SECONDS.fullmatch(value):
        value = float(value)
    return unix_time(value, fractional=True)


def _slack_id(prefix: str, length: int = 10) -> str:
    return prefix + "".join(choice(ascii_uppercase + digits) for _ in range(length))


def _app_mention(now: float) -> dict[str, Any]:
    event_ts = f"{now:.6f}"
    return {
        "token": "XXYYZZ",
        "team_id": "T0001ABCD",
        "api_app_id": "A0KRD7HC3",
        "event": {
            "type": "app_mention",
            "user": "U061F7AUR",
            "text": "<@U0LAN0Z89> is it everything a river should be?",
            "ts": event_ts,
            "channel": "C0LAN2Q65",
            "event_ts": event_ts,
            "client_msg_id": token_hex(16),
        },
        "type": "event_callback",
        "event_id": _slack_id("Ev"),
        "event_time": int(now),
        "authorizations": [{"team_id": "T0001ABCD", "user_id": "U0LAN0Z89", "is_bot": True}],
        "is_ext_shared_channel": False,
        "event_context": "4-" + token_hex(24),
    }
