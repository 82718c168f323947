"""Twilio webhooks (Voice, Messaging and other callbacks): `X-Twilio-Signature: <base64>`.

The signed text is the full URL Twilio requested, then for a form callback every POST parameter
as `name + value`, names sorted, each name's distinct values sorted (twilio-python
`RequestValidator.compute_signature`). A JSON callback's URL carries `bodySHA256=<hex sha256 of
the raw body>` and the parameters are empty. HMAC-SHA1 keyed by the Auth Token, unless
`X-Twilio-Webhooks-Signature-Settings` names `algorithm=HMAC_SHA256` (a SharedKey setting). As in
the SDK, the URL is accepted with and without its port. Twilio signs no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from secrets import token_hex
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
from adapters.signing import DIGEST_SIZES, body_sha256, decode_base64, decode_hex, hmac_digest, with_headers

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
BODY_HASH_PARAM = "bodySHA256"
ALGORITHMS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}
MAX_FORM_FIELDS = 1000
RESOURCES = (  # (kind, sid parameter, status parameter), the most specific first
    ("transcription", "TranscriptionSid", "TranscriptionStatus"),
    ("recording", "RecordingSid", "RecordingStatus"),
    ("conference", "ConferenceSid", "StatusCallbackEvent"),
    ("message", "MessageSid", "MessageStatus"),
    ("message", "SmsSid", "SmsStatus"),
    ("call", "CallSid", "CallStatus"),
)
_STATUS = re.compile(r"[a-z0-9_-]{1,64}")


class TwilioOptions(BaseModel):
    """Options of the Twilio adapter (`spec.webhook.options`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publicUrl: str | None = Field(
        None,
        max_length=2048,
        description="The webhook URL as configured in Twilio without its query string "
        "(https://host[:port]/path), for when a proxy rewrites the URL the hub sees; the query string "
        "of the received request is appended. Default: the request URL as received.",
    )

    @field_validator("publicUrl")
    @classmethod
    def _absolute_without_query(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http or https URL")
        if parts.query or parts.fragment or "?" in url or "#" in url:
            raise ValueError("must have no query string or fragment (the received one is appended)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not contain credentials")
        return url


class TwilioAdapter(WebhookAdapter[TwilioOptions]):
    """Twilio HTTP callbacks signed with the Auth Token (or a SharedKey)."""

    name: ClassVar[str] = "twilio"
    options_model: ClassVar[type[BaseModel]] = TwilioOptions
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm=f"HMAC-SHA1, key = the primary Auth Token as UTF-8 (HMAC-SHA256 when {SETTINGS_HEADER} "
        "says algorithm=HMAC_SHA256)",
        signed_content="the full public URL, then each form parameter name+value sorted by name; "
        "JSON bodies: the URL with bodySHA256=<hex sha256 of the raw body>, no parameters",
        encoding="standard base64 with padding, no prefix",
        timestamp=None,
        dedupe_key=f"{IDEMPOTENCY_HEADER} header, else sha256 of the body",
        delivery_timeout_s=15.0,
    )

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the signature over the URL (with and without its port) and the parameters."""
        algorithm = _algorithm(request, self.name)
        header = request.signed_header(SIGNATURE_HEADER, self.name)
        candidate = decode_base64(header, DIGEST_SIZES[algorithm], self.name)
        url = self._signed_url(request)
        body_hash = _body_hash(url, self.name)
        params = [] if body_hash is not None else _form(request.body)
        urls = _port_variants(url)
        for secret in secrets:  # every secret, each over every URL variant, compared in constant time
            signatures = [compute_signature(secret.value, variant, params, algorithm) for variant in urls]
            if any(hmac.compare_digest(signature, candidate) for signature in signatures):
                break
        else:
            raise SignatureError(self.name, "no_match", "no active secret produced a matching signature")
        if body_hash is not None and not hmac.compare_digest(hashlib.sha256(request.body).digest(), body_hash):
            raise SignatureError(self.name, "no_match", f"the body does not match the signed {BODY_HASH_PARAM}")
        return Verification(scheme=f"hmac-{algorithm}", key_id=secret.key_id, signed_at=None, signature=candidate)

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `twilio.<message|call|recording|...>.<status>`, subject = the resource SID."""
        if _body_hash(self._signed_url(request), self.name) is None:
            grouped: dict[str, list[str]] = {}
            for key, value in _form(request.body):
                grouped.setdefault(key, []).append(value)
            values: dict[str, Any] = {key: found[0] if len(found) == 1 else found for key, found in grouped.items()}
            data: Any = values
        else:
            values = request.json_object()
            data = orjson.Fragment(request.body)
        kind, sid, status = _resource(values)
        event_type = f"twilio.{kind}.{status}" if status else f"twilio.{kind}"
        return [
            NormalizedEvent(
                id=request.header(IDEMPOTENCY_HEADER) or body_sha256(request.body),
                type=event_type,
                data=data,
                subject=sid,
                time=_rfc2822(values.get("Timestamp")),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A form-encoded message status callback (`delivered`)."""
        message_sid = "SM" + token_hex(16)
        params = {
            "AccountSid": "AC" + token_hex(16),
            "ApiVersion": "2010-04-01",
            "From": "+14155550100",
            "MessageSid": message_sid,
            "MessageStatus": "delivered",
            "MessagingServiceSid": "MG" + token_hex(16),
            "SmsSid": message_sid,
            "SmsStatus": "delivered",
            "To": "+14155550199",
        }
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            IDEMPOTENCY_HEADER: f"{token_hex(16)}-{int(now)}",
        }
        return TestRequest(headers=headers, body=urlencode(params).encode("ascii"))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Add `X-Twilio-Signature` for a form callback to `publicUrl` (required: a test request has no URL)."""
        if self.options.publicUrl is None:
            raise ValueError("twilio signs the URL it calls: set the publicUrl option to sign a test request")
        signature = compute_signature(secret.value, self.options.publicUrl, _form(request.body), "sha1")
        return with_headers(request, {SIGNATURE_HEADER: base64.b64encode(signature).decode("ascii")})

    def _signed_url(self, request: InboundRequest) -> str:
        if self.options.publicUrl is None:
            return request.url
        query = urlsplit(request.url).query
        return self.options.publicUrl + ("?" + query if query else "")


def compute_signature(key: bytes, url: str, params: Sequence[tuple[str, str]], algorithm: str) -> bytes:
    """The raw HMAC Twilio sends (base64-encoded) for `url` and form `params`, as twilio-python computes it."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return hmac_digest(algorithm, key, text.encode("utf-8", "surrogatepass"))


def _algorithm(request: InboundRequest, provider: str) -> str:
    """`sha1`, or what `X-Twilio-Webhooks-Signature-Settings: key=...,algorithm=...` names."""
    if SETTINGS_HEADER not in request.headers:
        return "sha1"
    named = "HMAC_SHA1"
    for part in request.signed_header(SETTINGS_HEADER, provider).split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            named = value.strip().upper()
            break  # the first one, as twilio-python's get_signature_algorithm
    if named not in ALGORITHMS:
        raise SignatureError(provider, "unsupported_scheme", f"{SETTINGS_HEADER} names an unsupported algorithm")
    return ALGORITHMS[named]


def _body_hash(url: str, provider: str) -> bytes | None:
    """The signed SHA-256 of a JSON body from the URL's `bodySHA256`, or None for a form callback."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    hashes = [value for key, value in pairs if key == BODY_HASH_PARAM]
    if not hashes:
        return None
    if len(hashes) > 1:
        raise SignatureError(provider, "malformed_signature", f"the URL carries {BODY_HASH_PARAM} more than once")
    return decode_hex(hashes[0], 32, provider)


def _form(body: bytes) -> list[tuple[str, str]]:
    """The parameters of a form-encoded body (strict UTF-8 and syntax), or a PayloadError."""
    try:
        return parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("invalid_form", "the body is not application/x-www-form-urlencoded") from None


def _port_variants(url: str) -> list[str]:
    """`url` without its port and with its (default) port, as twilio-python's `validate` tries both."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return [url]
    netloc, origin = parts.netloc, f"{parts.scheme}://{parts.netloc}"
    if not url.startswith(origin):
        return [url]
    rest = url[len(origin) :]
    if port is None:
        default = 443 if parts.scheme == "https" else 80
        return [url, f"{parts.scheme}://{netloc}:{default}{rest}"]
    return [f"{parts.scheme}://{netloc.rpartition(':')[0]}{rest}", url]


def _resource(values: dict[str, Any]) -> tuple[str, str | None, str | None]:
    for kind, sid_key, status_key in RESOURCES:
        sid = values.get(sid_key)
        if isinstance(sid, str) and sid:
            status = values.get(status_key)
            status = status.lower() if isinstance(status, str) else None
            return kind, sid, status if status and _STATUS.fullmatch(status) else None
    return "callback", None, None


def _rfc2822(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else None
