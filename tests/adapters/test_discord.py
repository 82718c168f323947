"""Discord adapter: PyNaCl-made vectors, key formats, malformed headers, PINGs, replies, normalization.

The rules every provider keeps are proven for `discord` (with a test key pair) by test_conformance.py."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.discord import DiscordAdapter
from tests.adapters.harness import Endpoint, refusal_reason, vectors

VECTORS = vectors("discord")
NOW = 1_716_300_000
ADAPTER = DiscordAdapter.configure()


def key_pair(label: str) -> tuple[SigningSecret, SigningSecret]:
    """(public key as a connector secret, private key in NaCl's 128-hex form for `sign`)."""
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    seed = private.private_bytes_raw()
    return SigningSecret(label, public.hex().encode()), SigningSecret(label, (seed + public).hex().encode())


OLD, OLD_SIGNER = key_pair("old")
NEW, NEW_SIGNER = key_pair("new")
COMMAND: dict[str, Any] = {
    "application_id": "1180000000000000000",
    "channel_id": "1180000000000000010",
    "data": {"id": "1180000000000000020", "name": "deploy", "options": [{"name": "env", "type": 3, "value": "prod"}]},
    "guild_id": "1180000000000000030",
    "id": "1242000000000000001",
    "member": {"user": {"id": "80351110224678912", "username": "nelly"}},
    "token": "dGVzdC10b2tlbg",
    "type": 2,
    "version": 1,
}
BODY = orjson.dumps(COMMAND)
inbound = Endpoint("http://hub.test/hooks/acme/dc", BODY, received_at=NOW)


def signed(body: bytes = BODY, signer: SigningSecret = NEW_SIGNER, now: float = NOW) -> dict[str, str]:
    return ADAPTER.sign(TestRequest(headers={}, body=body), signer, now).headers


GOOD = signed()
SIG, TS = GOOD["X-Signature-Ed25519"], GOOD["X-Signature-Timestamp"]


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_pynacl_vectors_verify_and_are_what_sign_produces(vector: dict[str, str]) -> None:
    public = SigningSecret("portal", vector["public_key"].encode())
    body = vector["payload"].encode()
    headers = {"X-Signature-Ed25519": vector["signature"], "X-Signature-Timestamp": vector["timestamp"]}
    verification = ADAPTER.verify(inbound(headers, body), [public])
    assert verification == type(verification)("ed25519", "portal", float(vector["timestamp"]))
    signer = SigningSecret("test", vector["signing_key"].encode())
    ours = ADAPTER.sign(TestRequest(headers={}, body=body), signer, int(vector["timestamp"]) + 0.9)
    assert ours.headers == headers


def test_our_signatures_verify_with_pynacl() -> None:
    """PyNaCl is what Discord's own examples verify with (and what produced the vectors)."""
    VerifyKey(bytes.fromhex(NEW.value.decode())).verify(TS.encode() + BODY, bytes.fromhex(SIG))
    with pytest.raises(BadSignatureError):
        VerifyKey(bytes.fromhex(NEW.value.decode())).verify(TS.encode() + BODY + b" ", bytes.fromhex(SIG))


def test_valid_request_reports_key_id_and_signed_timestamp() -> None:
    verification = ADAPTER.verify(inbound(GOOD), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("ed25519", "new", NOW)


def test_a_changed_timestamp_does_not_match() -> None:
    assert reason_of(inbound({**GOOD, "X-Signature-Timestamp": str(NOW + 1)}), [NEW]) == "no_match"


MALFORMED = {
    "empty signature": {"X-Signature-Ed25519": ""},
    "truncated": {"X-Signature-Ed25519": SIG[:-2]},
    "over-long": {"X-Signature-Ed25519": SIG + "00"},
    "uppercase hex": {"X-Signature-Ed25519": SIG.upper()},
    "non-hex": {"X-Signature-Ed25519": SIG[:-1] + "g"},
    "0x prefix": {"X-Signature-Ed25519": "0x" + SIG[2:]},
    "non-ascii": {"X-Signature-Ed25519": SIG[:-1] + "\u00e9"},
    "empty timestamp": {"X-Signature-Timestamp": ""},
    "negative timestamp": {"X-Signature-Timestamp": f"-{TS}"},
    "fractional timestamp": {"X-Signature-Timestamp": f"{TS}.5"},
    "huge timestamp": {"X-Signature-Timestamp": "9" * 40},
    "ms timestamp": {"X-Signature-Timestamp": TS + "0000"},
}


@pytest.mark.parametrize("override", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(override: dict[str, str]) -> None:
    assert reason_of(inbound({**GOOD, **override}), [NEW]) == "malformed_signature"


@pytest.mark.parametrize("value", [NEW.value, NEW.value.upper()])
def test_check_secret_accepts_hex_public_keys(value: bytes) -> None:
    ADAPTER.check_secret(SigningSecret("ok", value))


@pytest.mark.parametrize("value", [b"", NEW.value[:-2], NEW.value + b"00", NEW_SIGNER.value, b"z" * 64, b"\xff" * 64])
def test_check_secret_refuses_other_values_naming_only_the_key_id(value: bytes) -> None:
    with pytest.raises(ValueError, match="the-key-id") as caught:
        ADAPTER.check_secret(SigningSecret("the-key-id", value))
    assert not value or value.decode(errors="replace") not in str(caught.value)


def test_sign_needs_a_private_key_whose_halves_match() -> None:
    with pytest.raises(ValueError, match="cannot sign"):
        ADAPTER.sign(TestRequest(headers={}, body=BODY), NEW, NOW)
    mismatched = SigningSecret("mixed", NEW_SIGNER.value[:64] + OLD.value)
    with pytest.raises(ValueError, match="does not belong"):
        ADAPTER.sign(TestRequest(headers={}, body=BODY), mismatched, NOW)


PINGS = {
    "interaction PING": (b'{"application_id":"1","id":"2","token":"t","type":1,"version":1}', 200, b'{"type":1}'),
    "Webhook Events PING": (b'{"version":1,"application_id":"1234560123453231555","type":0}', 204, b""),
}


@pytest.mark.parametrize(("body", "status", "reply_body"), PINGS.values(), ids=PINGS.keys())
def test_pings_are_answered_byte_exactly(body: bytes, status: int, reply_body: bytes) -> None:
    request = inbound(signed(body), body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    reply = ADAPTER.handshake(request, [NEW])
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (status, reply_body, "application/json")


@pytest.mark.parametrize(
    "body",
    [BODY, b'{"version":1,"type":1,"event":{"type":"APPLICATION_AUTHORIZED"}}', b'{"type":true}', b'{"type":"1"}'],
)
def test_other_payloads_are_not_handshakes(body: bytes) -> None:
    assert ADAPTER.handshake(inbound({}, body), [NEW]) is None


def test_normalize_application_command() -> None:
    [event] = ADAPTER.normalize(inbound(GOOD))
    assert (event.id, event.type, event.subject) == (
        "1242000000000000001",
        "discord.interaction.application_command",
        "deploy",
    )
    assert event.time == datetime(2024, 5, 20, 6, 24, 35, 244000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_webhook_event_uses_the_body_hash_and_the_event_time() -> None:
    vector = VECTORS[2]
    body = vector["payload"].encode()
    [event] = ADAPTER.normalize(inbound({}, body))
    assert (event.type, event.subject) == ("discord.entitlement_create", "111178765189277770")
    assert event.id == "sha256:" + hashlib.sha256(body).hexdigest()
    assert event.time == datetime(2024, 10, 18, 18, 41, 21, 109604, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [b'{"version":1,"type":1,"event":{"timestamp":"x"}}', b'{"version":1,"type":1,"event":"x"}', b'{"type":2}'],
)
def test_normalize_needs_an_event_type_or_an_interaction_id(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({}, body))


@pytest.mark.parametrize("body", [b"", b"[]", b'{"type": NaN}', b"\xff", b'{"a":[' * 2000, b'{"type":1} trailing'])
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(signed(body), body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.handshake(request, [NEW])
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_an_application_authorized_event_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW_SIGNER, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    assert ADAPTER.handshake(request, [NEW]) is None
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.time) == ("discord.application_authorized", datetime.fromtimestamp(NOW, UTC))
    assert (event.subject or "").isdigit()


@pytest.mark.parametrize(
    ("body", "status", "reply"),
    [
        (b'{"id":"1","type":2,"token":"t","data":{"name":"deploy"}}', 200, b'{"type":5}'),
        (b'{"id":"1","type":3,"token":"t","data":{"custom_id":"ok"}}', 200, b'{"type":6}'),
        (b'{"id":"1","type":4,"token":"t","data":{"name":"q"}}', 200, b'{"type":8,"data":{"choices":[]}}'),
        (b'{"id":"1","type":5,"token":"t","data":{"custom_id":"form"}}', 200, b'{"type":5}'),
        (b'{"version":1,"application_id":"1","type":1,"event":{"type":"ENTITLEMENT_CREATE"}}', 204, b""),
    ],
)
def test_published_interactions_get_the_response_discord_needs(body: bytes, status: int, reply: bytes) -> None:
    """Deferred: the consuming service answers through the interaction token; Webhook Events: 204."""
    answer = ADAPTER.accepted_reply(inbound(signed(body), body))
    assert answer is not None
    assert (answer.status, answer.body, answer.content_type) == (status, reply, "application/json")
