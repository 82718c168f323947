"""SendGrid adapter: the SDK's published vector and SDK-checked ones, key handling, malformed headers, batches.

The rules every provider keeps are proven for `sendgrid` (with a test P-256 key pair) by test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks.sendgrid import SendGridAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("sendgrid")
ADAPTER = SendGridAdapter.configure()
SIG, TS = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"


def key_pair(key_id: str, curve: ec.EllipticCurve | None = None) -> tuple[SigningSecret, SigningSecret]:
    """(private key as PEM, public key as base64 DER SubjectPublicKeyInfo, as SendGrid's console shows it)."""
    private = ec.generate_private_key(curve or ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return SigningSecret(key_id, pem), SigningSecret(key_id, base64.b64encode(spki))


(OLD_PRIVATE, OLD), (NEW_PRIVATE, NEW) = key_pair("old"), key_pair("new")
BODY = (
    orjson.dumps(
        [
            {
                "email": "ada@example.com",
                "event": "delivered",
                "sg_event_id": "ZGVsaXZlcmVkLTA",
                "sg_message_id": "gXwG4.1",
                "timestamp": 1699999995,
                "response": "250 OK",
            },
            {
                "email": "ada@example.com",
                "event": "open",
                "sg_event_id": "b3Blbi0x",
                "sg_message_id": "gXwG4.1",
                "timestamp": 1700000000,
            },
        ]
    )
    + b"\r\n"
)
inbound = Endpoint("https://hub.test/hooks/acme/sg", BODY)


def signed_headers(private: SigningSecret = NEW_PRIVATE, body: bytes = BODY, now: int = NOW) -> dict[str, str]:
    return ADAPTER.sign(TestRequest(headers={}, body=body), private, now).headers


GOOD = signed_headers()


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
def test_sdk_vectors_verify_and_generated_ones_are_what_sign_produces(vector: dict[str, Any]) -> None:
    public = SigningSecret("sdk", vector["public_key"].encode())
    ADAPTER.check_secret(public)
    body = vector["payload"].encode()
    request = inbound({SIG: vector["signature"], TS: vector["timestamp"]}, body)
    assert ADAPTER.verify(request, [public]) == Verification("ecdsa-p256-sha256", "sdk", float(vector["timestamp"]))
    assert [e.id for e in ADAPTER.normalize(request)] == [e["sg_event_id"] for e in json.loads(vector["payload"])]
    if vector["private_key"] is not None:
        private = SigningSecret("sdk", vector["private_key"].encode())
        ours = ADAPTER.sign(TestRequest(headers={}, body=body), private, int(vector["timestamp"]) + 0.5)
        assert (ours.headers[SIG], ours.headers[TS]) == (vector["signature"], vector["timestamp"])


def test_the_verification_key_in_pem_or_wrapped_base64_works_too() -> None:
    der = base64.b64decode(NEW.value)
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrapped = b"\n".join(NEW.value[i : i + 64] for i in range(0, len(NEW.value), 64))
    for value in (pem, wrapped, b"  " + NEW.value + b"\n"):
        ADAPTER.check_secret(SigningSecret("k", value))
        assert ADAPTER.verify(inbound(GOOD), [SigningSecret("k", value)]).key_id == "k"


def other_keys() -> dict[str, bytes]:
    p384 = key_pair("p384", ec.SECP384R1())[1].value
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    ed_der = ed.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "empty": b"",
        "private key": NEW_PRIVATE.value,
        "P-384": p384,
        "Ed25519": base64.b64encode(ed_der),
        "not base64": b"MFkw*not*base64",
        "truncated": NEW.value[:40],
        "hex": base64.b64decode(NEW.value).hex().encode(),
    }


@pytest.mark.parametrize("name", list(other_keys()))
def test_check_secret_refuses_anything_but_a_p256_public_key(name: str) -> None:
    value = other_keys()[name]
    with pytest.raises(ValueError, match="the-key-id") as caught:
        ADAPTER.check_secret(SigningSecret("the-key-id", value))
    assert not value or value.decode(errors="replace")[:12] not in str(caught.value)


def test_sign_needs_a_private_key() -> None:
    with pytest.raises(ValueError, match="private key"):
        ADAPTER.sign(ADAPTER.sample(NOW), NEW, NOW)


def test_the_trailing_crlf_and_the_timestamp_are_signed() -> None:
    assert reason_of(inbound(GOOD, BODY.rstrip()), [NEW]) == "no_match"
    assert reason_of(inbound({**GOOD, TS: str(NOW + 1)}), [NEW]) == "no_match"


def test_sendgrid_documents_no_window_so_the_hubs_applies() -> None:
    assert ADAPTER.replay_window_s is None  # the hub's default (300 s) is held by test_conformance.py


DER = base64.b64decode(GOOD[SIG])
MALFORMED = {
    "empty": {SIG: ""},
    "unpadded": {SIG: GOOD[SIG].rstrip("=")} if GOOD[SIG].endswith("=") else {SIG: GOOD[SIG][:-1]},
    "url-safe base64": {SIG: base64.urlsafe_b64encode(b"\xff" * 70).decode()},
    "raw r||s instead of DER": {SIG: base64.b64encode(b"\x01" * 64).decode()},
    "trailing garbage after DER": {SIG: base64.b64encode(DER + b"\x00").decode()},
    "over-long": {SIG: base64.b64encode(DER[:2] + b"\x02\x50" + b"\x01" * 80).decode()},
    "zero r": {SIG: base64.b64encode(bytes.fromhex("3006020100020101")).decode()},
    "negative s": {SIG: base64.b64encode(bytes.fromhex("30060201010201ff")).decode()},
    "non-minimal integer": {SIG: base64.b64encode(bytes.fromhex("300702020001020101")).decode()},
    "non-ascii": {SIG: GOOD[SIG][:-2] + "\u00e9="},
    "timestamp in ms": {TS: str(NOW * 1000)},
    "timestamp fractional": {TS: f"{NOW}.0"},
    "timestamp negative": {TS: f"-{NOW}"},
    "timestamp empty": {TS: ""},
}


@pytest.mark.parametrize("changed", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(changed: dict[str, str]) -> None:
    assert reason_of(inbound({**GOOD, **changed}), [NEW]) == "malformed_signature"


def test_no_handshake() -> None:
    assert ADAPTER.handshake(inbound(GOOD), [NEW]) is None
    assert ADAPTER.scheme.handshake is None


def test_normalize_gives_one_event_per_element() -> None:
    events = ADAPTER.normalize(inbound(GOOD))
    assert [(e.id, e.type, e.subject, e.time) for e in events] == [
        ("ZGVsaXZlcmVkLTA", "sendgrid.delivered", "gXwG4.1", datetime(2023, 11, 14, 22, 13, 15, tzinfo=UTC)),
        ("b3Blbi0x", "sendgrid.open", "gXwG4.1", datetime.fromtimestamp(NOW, UTC)),
    ]
    assert [e.data for e in events] == orjson.loads(BODY)


def test_normalize_without_ids_types_or_times() -> None:
    body = b'[{"email":"ada@example.com","event":"Weird Event!","timestamp":"1700000000"},{"event":7,"timestamp":1e3}]'
    events = ADAPTER.normalize(inbound({}, body))
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    assert [(e.id, e.type, e.subject, e.time) for e in events] == [
        (digest + "#0", "sendgrid.event", "ada@example.com", None),
        (digest + "#1", "sendgrid.event", None, None),
    ]


@pytest.mark.parametrize("body", [b"", b"[]", b"{}", b'[{"a":1}, 2]', b"[NaN]", b"\xff", b"[" * 5000 + b"]" * 5000])
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(signed_headers(body=body), body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_batch_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 3000
    assert sample.body.endswith(b"\r\n")
    request = inbound(ADAPTER.sign(sample, NEW_PRIVATE, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    events = ADAPTER.normalize(request)
    assert [e.type for e in events] == ["sendgrid.processed", "sendgrid.delivered", "sendgrid.open"]
    assert len({e.id for e in events}) == 3
    assert {e.subject for e in events} == {orjson.loads(sample.body)[0]["sg_message_id"]}


@settings(max_examples=60, deadline=None)
@given(body=st.binary(min_size=1, max_size=300), timestamp=st.integers(0, 10**11))
def test_our_signatures_verify_with_the_public_key_for_any_body_and_time(body: bytes, timestamp: int) -> None:
    headers = signed_headers(body=body, now=timestamp)
    public = serialization.load_der_public_key(base64.b64decode(NEW.value))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(base64.b64decode(headers[SIG]), str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
