"""X (Twitter) Account Activity webhooks: `x-twitter-webhooks-signature: sha256=<base64>` over the body.

The HMAC-SHA256 key is the app's consumer (API) secret. X checks the URL with a Challenge-Response
Check, an unsigned `GET ?crc_token=<token>` answered with
`{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, token))}`, keyed with the first
listed secret (the current one). That answer is the POST signature of a body equal to the token, so
a token that could be a JSON object (any `{`) is refused: the CRC can never sign an event.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import randbelow
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
from adapters.fields import unix_time
from adapters.signing import after_prefix, decode_base64, hmac_digest, matching_hmac, with_headers

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
PREFIX = "sha256="
CRC_PARAM = "crc_token"
MAX_CRC_TOKEN = 1024
MAX_QUERY_FIELDS = 64
SINGLE_EVENT_KEYS = ("user_event",)
"""Keys whose value is one event object rather than an array of them."""

_MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTHS = {month: number for number, month in enumerate(_MONTH_NAMES, start=1)}
_DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class XAdapter(WebhookAdapter[NoOptions]):
    """X Account Activity API deliveries (tweets, likes, follows, direct messages, ...)."""

    name: ClassVar[str] = "x"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="HMAC-SHA256, key = the app's consumer secret as UTF-8",
        signed_content="the raw body",
        encoding="standard base64, prefixed sha256=",
        timestamp=None,
        dedupe_key="per event: for_user_id + event kind + the event's id (else sha256 of the event)",
        handshake=f'GET ?{CRC_PARAM}=<token> -> 200 {{"response_token":"sha256=<base64 HMAC of the token>"}}',
        delivery_timeout_s=3.0,
        accepted_status=200,  # the Account Activity API expects 200 OK
        dedupe_key_signed=True,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """A CRC GET of exactly the documented shape, or a POST whose signature matches a secret."""
        if request.method == "GET":
            _crc_token(request, self.name)
            return Verification(scheme="x-crc", key_id=None, signed_at=None)
        header = after_prefix(request.signed_header(SIGNATURE_HEADER, self.name), PREFIX, SIGNATURE_HEADER, self.name)
        candidate = decode_base64(header, 32, self.name)
        key_id = matching_hmac(self.name, secrets, [candidate], request.body)
        return Verification(scheme="hmac-sha256", key_id=key_id, signed_at=None, signature=candidate)

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """Answer a CRC with the token's HMAC under the first (current) secret."""
        if request.method != "GET" or not secrets:
            return None
        return HandshakeReply(200, crc_response(_crc_token(request, self.name), secrets[0]), "application/json")

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event per element of each `*_events` array (and `user_event`): `x.<key>`."""
        body = request.json_object()
        user = body.get("for_user_id")
        user = user if isinstance(user, str) and user else None
        events = []
        for kind, value in body.items():
            if kind.endswith("_events") and isinstance(value, list):
                elements = value
            elif kind in SINGLE_EVENT_KEYS and isinstance(value, dict):
                elements = [value]
            else:
                continue
            for element in elements:
                if not isinstance(element, dict):
                    raise PayloadError("invalid_event", f"an element of {kind} is not an object")
                events.append(self._event(kind, element, user, body))
        if not events:
            raise PayloadError("invalid_event", "the body carries no Account Activity events")
        return events

    def sample(self, now: float) -> TestRequest:
        """A `tweet_create_events` delivery: a mention of the subscribed user."""
        tweet_id = str(1_850_000_000_000_000_000 + randbelow(10**17))
        moment = datetime.fromtimestamp(int(now), UTC)
        tweet = {
            "created_at": f"{_DAY_NAMES[moment.weekday()]} {_MONTH_NAMES[moment.month - 1]} {moment:%d %H:%M:%S} +0000 "
            f"{moment.year}",
            "id": int(tweet_id),
            "id_str": tweet_id,
            "text": "@acme_support my order has not arrived yet",
            "source": '<a href="https://mobile.x.com" rel="nofollow">X Web App</a>',
            "in_reply_to_user_id_str": "2244994945",
            "in_reply_to_screen_name": "acme_support",
            "user": {"id": 6253282, "id_str": "6253282", "name": "Ada", "screen_name": "ada_l"},
            "entities": {"user_mentions": [{"screen_name": "acme_support", "id_str": "2244994945"}]},
            "timestamp_ms": str(int(now * 1000)),
        }
        body = {"for_user_id": "2244994945", "user_has_blocked": False, "tweet_create_events": [tweet]}
        return TestRequest(headers={"Content-Type": "application/json"}, body=orjson.dumps(body))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `x-twitter-webhooks-signature: sha256=<base64>`."""
        digest = hmac_digest("sha256", secret.value, request.body)
        return with_headers(request, {SIGNATURE_HEADER: PREFIX + base64.b64encode(digest).decode("ascii")})

    def _event(self, kind: str, element: dict[str, Any], user: str | None, body: dict[str, Any]) -> NormalizedEvent:
        data: dict[str, Any] = {"for_user_id": user, "kind": kind, "event": element}
        for lookup in ("users", "apps"):  # direct message deliveries describe their participants here
            if isinstance(body.get(lookup), dict):
                data[lookup] = body[lookup]
        return NormalizedEvent(
            id=f"{user or '-'}:{kind}:{_element_id(element)}",
            type=f"{self.name}.{kind}",
            data=data,
            subject=user,
            time=_element_time(element),
        )


def crc_response(token: str, secret: SigningSecret) -> bytes:
    """The CRC answer body: `{"response_token": "sha256=<base64 HMAC-SHA256(secret, token)>"}`."""
    digest = hmac_digest("sha256", secret.value, token.encode())
    return orjson.dumps({"response_token": PREFIX + base64.b64encode(digest).decode("ascii")})


def _crc_token(request: InboundRequest, provider: str) -> str:
    """The token of a CRC (a GET with one `crc_token` and no body), else a SignatureError."""
    try:
        fields = parse_qsl(
            urlsplit(request.url).query, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise SignatureError(provider, "malformed_signature", "the query string cannot be decoded") from None
    tokens = [value for key, value in fields if key == CRC_PARAM]
    if not tokens:
        raise SignatureError(provider, "missing_header", f"a GET is a CRC and needs {CRC_PARAM}")
    token = tokens[0]
    if len(tokens) != 1 or request.body or not 0 < len(token) <= MAX_CRC_TOKEN or not token.isprintable():
        raise SignatureError(provider, "malformed_signature", f"not a CRC: one printable {CRC_PARAM}, no body")
    if "{" in token:
        raise SignatureError(provider, "malformed_signature", f"a {CRC_PARAM} with '{{' could sign an event body")
    return token


def _element_id(element: dict[str, Any]) -> str:
    """`id_str`, `id`, or a deleted tweet's `status.id`; else sha256 of the element."""
    status = element.get("status")
    for value in (element.get("id_str"), element.get("id"), status.get("id") if isinstance(status, dict) else None):
        if isinstance(value, str) and value:
            return value
        if type(value) is int:
            return str(value)
    return "sha256:" + hashlib.sha256(orjson.dumps(element, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _element_time(element: dict[str, Any]) -> datetime | None:
    """`created_timestamp` / `timestamp_ms` (ms strings), else `created_at` (`Wed Oct 10 20:19:24 +0000 2018`)."""
    for key in ("created_timestamp", "timestamp_ms"):
        value = element.get(key)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 13:
            return unix_time(int(value), unit="ms")
    value = element.get("created_at")
    return _twitter_time(value) if isinstance(value, str) else None


def _twitter_time(value: str) -> datetime | None:
    """X's `created_at` without locale-dependent strptime."""
    parts = value.split(" ")
    if len(parts) != 6 or parts[1] not in _MONTHS or parts[4] != "+0000":
        return None
    try:
        hour, minute, second = (int(part) for part in parts[3].split(":"))
        return datetime(int(parts[5]), _MONTHS[parts[1]], int(parts[2]), hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
