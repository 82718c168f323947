"""Discord interactions and Webhook Events: Ed25519 over `{X-Signature-Timestamp}{raw body}`.

The connector's secret is the application's Public Key (64 hex digits) from the Developer
Portal: verification needs no shared secret, and only Discord can sign. `sign` therefore needs a
test key pair's private key (see `sign`); the connector's public key alone cannot sign.

One endpoint may receive both kinds of payload: interactions (`id`, `token`, `type` 1 = PING) and
Webhook Events (`{version, application_id, type: 0 = PING | 1 = event, event}`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import randbits
from typing import Any, ClassVar

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

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
from adapters.fields import first_str, iso_time
from adapters.signing import body_sha256, decode_hex, parse_timestamp, with_headers

SIGNATURE_HEADER = "X-Signature-Ed25519"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
PONG = HandshakeReply(200, b'{"type":1}', "application/json")
EVENTS_PING_ACK = HandshakeReply(204, b"", "application/json")
DEFERRED_REPLIES = {
    2: HandshakeReply(200, b'{"type":5}', "application/json"),  # command: DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    3: HandshakeReply(200, b'{"type":6}', "application/json"),  # component: DEFERRED_UPDATE_MESSAGE
    4: HandshakeReply(200, b'{"type":8,"data":{"choices":[]}}', "application/json"),  # autocomplete: none
    5: HandshakeReply(200, b'{"type":5}', "application/json"),  # modal submit: deferred message
}
"""Interaction responses sent once the interaction is durably published (by interaction type)."""
INTERACTION_TYPES = {
    1: "ping",
    2: "application_command",
    3: "message_component",
    4: "application_command_autocomplete",
    5: "modal_submit",
}
DISCORD_EPOCH_MS = 1_420_070_400_000
_PUBLIC_KEY = re.compile(r"[0-9a-fA-F]{64}")
_PRIVATE_KEY = re.compile(r"[0-9a-fA-F]{128}")
_SNOWFLAKE = re.compile(r"[0-9]{1,20}")


class DiscordAdapter(WebhookAdapter[NoOptions]):
    """Discord HTTP interactions and Webhook Events, verified with the application's public key."""

    name: ClassVar[str] = "discord"
    scheme: ClassVar[SchemeInfo] = SchemeInfo(
        signature_header=SIGNATURE_HEADER,
        algorithm="Ed25519, verified with the application's Public Key (hex) as the secret",
        signed_content=f"{{{TIMESTAMP_HEADER}}}{{raw body}} (no separator)",
        encoding="lowercase hex, 64-byte signature, no prefix",
        timestamp=f"{TIMESTAMP_HEADER} header, unix seconds",
        dedupe_key="interaction id (body id); Webhook Events carry none: sha256 of the body",
        handshake='interaction PING (type 1) -> 200 application/json {"type":1}; '
        "Webhook Events PING (type 0) -> 204 empty",
        delivery_timeout_s=3.0,
        dedupe_key_signed=True,
    )

    def check_secret(self, secret: SigningSecret) -> None:
        """The secret must be an Ed25519 public key: 64 hex digits."""
        _public_key(secret)

    def verify(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> Verification:
        """Check the Ed25519 signature of `{timestamp}{body}` against every configured public key."""
        signature = decode_hex(request.signed_header(SIGNATURE_HEADER, self.name), 64, self.name)
        timestamp = request.signed_header(TIMESTAMP_HEADER, self.name)
        signed_at = parse_timestamp(timestamp, self.name)
        message = timestamp.encode("ascii") + request.body
        for secret in secrets:
            try:
                _public_key(secret).verify(signature, message)
            except InvalidSignature:
                continue
            return Verification(scheme="ed25519", key_id=secret.key_id, signed_at=signed_at)
        raise SignatureError(self.name, "no_match", "no configured public key verified the signature")

    def handshake(self, request: InboundRequest, secrets: Sequence[SigningSecret]) -> HandshakeReply | None:
        """PONG an interaction PING; acknowledge a Webhook Events PING with an empty 204."""
        body = request.json_object()
        kind = body.get("type")
        if "event" in body or type(kind) is not int:
            return None
        return {0: EVENTS_PING_ACK, 1: PONG}.get(kind)

    def accepted_reply(self, request: InboundRequest) -> HandshakeReply | None:
        """Discord needs an interaction response within 3 s: a deferred one, so that the service that
        consumes the event answers through the interaction's token; Webhook Events get an empty 204."""
        body = request.json_object()
        if "event" in body:
            return EVENTS_PING_ACK
        kind = body.get("type")
        return DEFERRED_REPLIES.get(kind) if type(kind) is int else None

    def normalize(self, request: InboundRequest) -> list[NormalizedEvent]:
        """One event: `discord.<event type>` for Webhook Events, `discord.interaction.<type>` otherwise."""
        body = request.json_object()
        if "event" in body:
            return [self._webhook_event(request, body)]
        interaction_id = body.get("id")
        kind = body.get("type")
        if not isinstance(interaction_id, str) or not interaction_id or type(kind) is not int:
            raise PayloadError("invalid_event", "the interaction has no string id or integer type")
        data = body.get("data")
        return [
            NormalizedEvent(
                id=interaction_id,
                type=f"{self.name}.interaction.{INTERACTION_TYPES.get(kind, str(kind))}",
                data=orjson.Fragment(request.body),
                subject=first_str(data, ("name",), ("custom_id",)),
                time=_snowflake_time(interaction_id),
            )
        ]

    def sample(self, now: float) -> TestRequest:
        """A Webhook Events `APPLICATION_AUTHORIZED` event."""
        moment = datetime.fromtimestamp(now, UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        body = {
            "version": 1,
            "application_id": "1234560123453231555",
            "type": 1,
            "event": {
                "type": "APPLICATION_AUTHORIZED",
                "timestamp": moment,
                "data": {
                    "integration_type": 1,
                    "scopes": ["applications.commands"],
                    "user": {"id": str(_snowflake(now)), "username": "ada", "global_name": "Ada", "bot": False},
                },
            },
        }
        headers = {"Content-Type": "application/json", "User-Agent": "Discord-Interactions/1.0 (+https://discord.com)"}
        return TestRequest(headers=headers, body=orjson.dumps(body))

    def sign(self, request: TestRequest, secret: SigningSecret, now: float) -> TestRequest:
        """Sign as Discord does, with a test key pair's private key.

        `secret.value` must be the 64-byte NaCl secret key as 128 hex digits (seed then public
        key, as PyNaCl and tweetnacl give it). Discord never hands out its private key, so the
        connector's own secret (the public key) cannot sign: that is a ValueError.
        """
        timestamp = str(int(now))
        signature = _private_key(secret).sign(timestamp.encode("ascii") + request.body)
        return with_headers(request, {SIGNATURE_HEADER: signature.hex(), TIMESTAMP_HEADER: timestamp})

    def _webhook_event(self, request: InboundRequest, body: dict[str, Any]) -> NormalizedEvent:
        event = body.get("event")
        event_type = event.get("type") if isinstance(event, dict) else None
        if not isinstance(event, dict) or not isinstance(event_type, str) or not event_type:
            raise PayloadError("invalid_event", "the webhook event has no string event.type")
        data = event.get("data")
        return NormalizedEvent(
            id=body_sha256(request.body),
            type=f"{self.name}.{event_type.lower()}",
            data=orjson.Fragment(request.body),
            subject=first_str(data, ("user", "id"), ("user_id",), ("lobby_id",), ("channel_id",), ("guild", "id")),
            time=iso_time(event.get("timestamp"), naive_tz=UTC),  # Discord writes UTC without an offset
        )


def _public_key(secret: SigningSecret) -> Ed25519PublicKey:
    """The secret as an Ed25519 public key, or ValueError naming only its key id."""
    if not _PUBLIC_KEY.fullmatch(secret.value.decode("ascii", errors="replace")):
        raise ValueError(f"secret {secret.key_id}: a Discord public key is 64 hex digits")
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(secret.value.decode("ascii")))


def _private_key(secret: SigningSecret) -> Ed25519PrivateKey:
    """A test signing key from its 128-hex NaCl form, checked against its own public half."""
    text = secret.value.decode("ascii", errors="replace")
    if not _PRIVATE_KEY.fullmatch(text):
        raise ValueError(
            f"secret {secret.key_id}: signing needs a test key pair's private key (128 hex digits: seed and "
            "public key); a Discord application's public key cannot sign"
        )
    raw = bytes.fromhex(text)
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) != raw[32:]:
        raise ValueError(f"secret {secret.key_id}: the public half does not belong to the seed")
    return key


def _snowflake_time(snowflake: str) -> datetime | None:
    """When a Discord snowflake id was made (its top 42 bits are ms since 2015-01-01)."""
    if not _SNOWFLAKE.fullmatch(snowflake):
        return None
    return datetime.fromtimestamp(((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


def _snowflake(now: float) -> int:
    return (max(0, int(now * 1000) - DISCORD_EPOCH_MS) << 22) | randbits(22)
