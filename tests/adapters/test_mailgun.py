"""Mailgun adapter: vectors checked with the SDK, the in-body signature's failures, the token as dedupe key.

The rules every provider keeps are proven for `mailgun` by test_conformance.py (event-data is unsigned
there too, by name)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks import mailgun
from adapters.webhooks.mailgun import MailgunAdapter
from tests.adapters.harness import NOW, refusal_reason, vectors

VECTORS = vectors("mailgun")
ADAPTER = MailgunAdapter.configure()
NEW = SigningSecret("new", b"key-7a1d4f2e9c3b6a8d5e0f1c2b3a4d5e6f")
TOKEN = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"
EVENT_DATA: dict[str, Any] = {
    "id": "CPgfbmQMTCKtHW6uIWtuVe",
    "timestamp": 1521472262.908181,
    "log-level": "info",
    "event": "delivered",
    "recipient": "alice@example.com",
    "message": {"headers": {"message-id": "20130503182626.18666.16540@mg.example.com"}, "size": 111},
}


def mac(secret: SigningSecret, timestamp: str, token: str) -> str:
    """`signature` as Mailgun documents it (and mailgun's `SecurityGuard.verify_webhook` checks it)."""
    return hmac.new(secret.value, (timestamp + token).encode(), hashlib.sha256).hexdigest()


def fields(secret: SigningSecret = NEW, timestamp: str = str(NOW), token: str = TOKEN, **extra: Any) -> dict[str, Any]:
    return {"token": token, "timestamp": timestamp, "signature": mac(secret, timestamp, token), **extra}


def inbound(body: Any, received_at: float = NOW) -> InboundRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    return InboundRequest(
        method="POST", url="http://hub.test/hooks/acme/mg", headers=headers, body=raw, received_at=received_at
    )


def delivery(signature: Any = None, event_data: Any = None) -> InboundRequest:
    return inbound({"signature": fields() if signature is None else signature, "event-data": event_data or EVENT_DATA})


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_vectors_verify_and_are_what_sign_produces(vector: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    secret = SigningSecret("sdk", vector["signing_key"].encode())
    signature = {key: vector[key] for key in ("token", "timestamp", "signature")}
    request = delivery(signature)
    assert ADAPTER.verify(request, [secret]) == Verification("hmac-sha256", "sdk", float(vector["timestamp"]))
    monkeypatch.setattr(mailgun, "token_hex", lambda nbytes: vector["token"])
    ours = ADAPTER.sign(
        TestRequest(headers={}, body=orjson.dumps({"event-data": EVENT_DATA})), secret, int(vector["timestamp"]) + 0.9
    )
    assert orjson.loads(ours.body) == {"signature": signature, "event-data": EVENT_DATA}
    assert list(orjson.loads(ours.body)) == ["signature", "event-data"]


def test_parent_signature_verifies_with_the_primary_accounts_key() -> None:
    [vector] = [v for v in VECTORS if "parent_signature" in v]
    sub, parent = (
        SigningSecret("sub", vector["signing_key"].encode()),
        SigningSecret("parent", vector["parent_signing_key"].encode()),
    )
    signature = {k: vector[k] for k in ("token", "timestamp", "signature")} | {
        "parent-signature": vector["parent_signature"]
    }
    assert ADAPTER.verify(delivery(signature), [parent]).key_id == "parent"
    assert ADAPTER.verify(delivery(signature), [sub, parent]).key_id == "sub"
    assert reason_of(delivery(signature), [NEW]) == "no_match"
    assert reason_of(delivery({**signature, "parent-signature": "AB" * 32}), [parent]) == "malformed_signature"


def test_a_changed_token_or_timestamp_does_not_match() -> None:
    good = fields()
    assert reason_of(delivery({**good, "token": TOKEN[:-1] + "4"}), [NEW]) == "no_match"
    assert reason_of(delivery({**good, "timestamp": str(NOW + 1)}), [NEW]) == "no_match"


def test_event_data_is_not_signed_so_the_token_is_the_dedupe_key() -> None:
    forged = delivery(fields(), {**EVENT_DATA, "id": "forged", "event": "failed"})
    assert ADAPTER.verify(forged, [NEW]).key_id == "new"
    assert ADAPTER.normalize(forged)[0].id == ADAPTER.normalize(delivery())[0].id == TOKEN


def test_integer_timestamp_is_signed_as_its_digits() -> None:
    assert ADAPTER.verify(delivery({**fields(), "timestamp": NOW}), [NEW]).signed_at == NOW


def test_mailgun_documents_no_window_so_the_hubs_applies() -> None:
    assert ADAPTER.replay_window_s is None  # the hub's window itself is held by test_conformance.py


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"event-data": {}}', b'{"signature": "abc"}', b'{"signature": null}',
     b'{"signature": {"timestamp": "1", "token": "t"}}', b'{"signature": {"token": "t", "signature": "x"}}',
     b'{"signature": {"timestamp": "1", "signature": "x"}}', b'{"a":' * 3000],
)  # fmt: skip
def test_a_body_without_the_signature_object_or_fields_is_unsigned(body: bytes) -> None:
    assert reason_of(inbound(body), [NEW]) == "missing_header"


MALFORMED = {
    "uppercase hex": {"signature": mac(NEW, str(NOW), TOKEN).upper()},
    "truncated": {"signature": mac(NEW, str(NOW), TOKEN)[:-2]},
    "sha1 length": {"signature": "ab" * 20},
    "number signature": {"signature": 12},
    "base64 signature": {"signature": "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="},
    "timestamp fraction": {"timestamp": f"{NOW}.5"},
    "timestamp float": {"timestamp": NOW + 0.5},
    "timestamp negative": {"timestamp": -NOW},
    "timestamp bool": {"timestamp": True},
    "timestamp non-ascii": {"timestamp": "1700\u00e9"},
    "token empty": {"token": ""},
    "token with space": {"token": "a b"},
    "token too long": {"token": "a" * 257},
    "token number": {"token": 5},
}


@pytest.mark.parametrize("change", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_fields_are_signature_errors(change: dict[str, Any]) -> None:
    assert reason_of(delivery({**fields(), **change}), [NEW]) == "malformed_signature"


def test_mailgun_has_no_handshake() -> None:
    assert ADAPTER.handshake(delivery(), [NEW]) is None


def test_normalize_delivered_event() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type) == (TOKEN, "mailgun.delivered")
    assert event.subject == "20130503182626.18666.16540@mg.example.com"
    assert event.time == datetime(2018, 3, 19, 15, 11, 2, 908181, tzinfo=UTC)
    assert orjson.loads(orjson.dumps(event.data)) == {"signature": fields(), "event-data": EVENT_DATA}


def test_normalize_falls_back_to_recipient_and_no_time() -> None:
    [event] = ADAPTER.normalize(
        delivery(event_data={"event": "failed", "recipient": "bob@example.com", "timestamp": "x"})
    )
    assert (event.type, event.subject, event.time) == ("mailgun.failed", "bob@example.com", None)


@pytest.mark.parametrize(
    "body",
    [{"signature": fields()}, {"signature": fields(), "event-data": {"id": "x"}}, {"event-data": EVENT_DATA},
     {"signature": fields(token=""), "event-data": EVENT_DATA}, b"\xff", b"[1]"],
)  # fmt: skip
def test_normalize_needs_token_event_data_and_event(body: Any) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound(body))


def test_sample_is_a_realistic_delivered_event_signed_in_its_body() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    assert b'"signature"' not in sample.body
    request = ADAPTER.sign(sample, NEW, NOW + 0.7)
    assert request.headers == sample.headers
    assert ADAPTER.verify(inbound(request.body), [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(inbound(request.body))
    assert (event.type, event.time) == ("mailgun.delivered", datetime.fromtimestamp(NOW, UTC))
    assert str(event.subject).endswith("@mg.example.com")
    assert len(event.id) == 50
    assert event.id != ADAPTER.normalize(inbound(ADAPTER.sign(sample, NEW, NOW).body))[0].id


@pytest.mark.parametrize("body", [b"[1, 2]", b"nope", b""])
def test_sign_needs_a_json_object_body(body: bytes) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW)


@settings(max_examples=150)
@given(key=st.binary(min_size=1, max_size=64), timestamp=st.integers(0, 10**11))
def test_sign_is_the_documented_algorithm_for_any_key_and_time(key: bytes, timestamp: int) -> None:
    secret = SigningSecret("k", key)
    body = ADAPTER.sign(TestRequest(headers={}, body=b'{"event-data": {"event": "opened"}}'), secret, timestamp).body
    signed = orjson.loads(body)["signature"]
    assert (signed["timestamp"], signed["signature"]) == (str(timestamp), mac(secret, str(timestamp), signed["token"]))
