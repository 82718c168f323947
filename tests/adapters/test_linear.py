"""Linear adapter: vectors checked with @linear/sdk, malformed headers, the signed body timestamp and Linear's
60 s window, normalization. The rules every provider keeps (round trips for any body timestamp, rotation,
tampering, missing and repeated headers, dedupe keys) are proven for `linear` by test_conformance.py."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, ReplayWindowError
from adapters.webhooks.linear import LinearAdapter
from hub.ingress.handler import check_replay_window
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("linear")
ADAPTER = LinearAdapter.configure()
NEW = SigningSecret("new", b"lin_wh_new0123456789abcdefghijklmn")
DELIVERY = "8c3d1f2e-6a7b-4c5d-9e0f-1a2b3c4d5e6f"
EVENT: dict[str, Any] = {
    "action": "update",
    "actor": {"id": "2e7a3f49-5d0c-4a5e-9e0b-3f6f1c2d4b11", "name": "Ada Lovelace", "type": "user"},
    "createdAt": "2023-11-14T22:13:19.877Z",
    "data": {"id": "236e0fe8-1f4a-4c57-a0cf-b2df06e33810", "identifier": "ENG-11", "title": "webhook test"},
    "updatedFrom": {"title": "draft"},
    "url": "https://linear.app/acme/issue/ENG-11/webhook-test",
    "type": "Issue",
    "webhookTimestamp": NOW * 1000,
    "webhookId": "d1c2b3a4-5e6f-4a1b-9c8d-7e6f5a4b3c2d",
}
BODY = orjson.dumps(EVENT)
inbound = Endpoint("http://hub.test/hooks/acme/ln", BODY)


def sig(body: bytes, secret: SigningSecret = NEW) -> str:
    return hmac.new(secret.value, body, hashlib.sha256).hexdigest()


def delivery(body: bytes = BODY, signature: str | None = None) -> InboundRequest:
    headers = {"Linear-Delivery": DELIVERY, "Linear-Event": "Issue"}
    return inbound({**headers, "Linear-Signature": sig(body) if signature is None else signature}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


def with_timestamp(value: Any) -> bytes:
    return orjson.dumps({**EVENT, "webhookTimestamp": value})


@pytest.mark.parametrize("vector", VECTORS)
def test_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("linear", vector["secret"].encode())
    body = vector["payload"].encode()
    verification = ADAPTER.verify(inbound({"Linear-Signature": vector["signature"]}, body), [secret])
    assert verification == type(verification)("hmac-sha256", "linear", vector["webhook_timestamp_ms"] / 1000)
    assert ADAPTER.sign(TestRequest(headers={}, body=body), secret, 0).headers == {
        "Linear-Signature": vector["signature"]
    }


def test_valid_delivery_reports_key_id_and_the_body_timestamp_in_seconds() -> None:
    verification = ADAPTER.verify(delivery(), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_linears_own_60_second_window_refuses_stale_and_future_bodies() -> None:
    assert ADAPTER.replay_window_s == 60.0
    for offset_ms, reason in ((-60_001, "timestamp_too_old"), (60_001, "timestamp_in_future")):
        signed_at = ADAPTER.verify(delivery(with_timestamp(NOW * 1000 + offset_ms)), [NEW]).signed_at
        with pytest.raises(ReplayWindowError) as caught:
            check_replay_window(signed_at, NOW, 60.0)
        assert caught.value.reason == reason
    check_replay_window(ADAPTER.verify(delivery(with_timestamp(NOW * 1000 - 59_999)), [NEW]).signed_at, NOW, 60.0)


def test_the_unsigned_timestamp_header_is_ignored() -> None:
    request = inbound({"Linear-Signature": sig(BODY), "Linear-Timestamp": "1"})
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW


@pytest.mark.parametrize("value", [None, "1700000000000", True, -1, 10**15, 1.5e300])
def test_a_signed_body_without_a_usable_timestamp_is_refused(value: Any) -> None:
    without = {key: item for key, item in EVENT.items() if key != "webhookTimestamp"}
    body = with_timestamp(value) if value is not None else orjson.dumps(without)
    assert reason_of(delivery(body), [NEW]) == "malformed_signature"


def test_a_fractional_millisecond_timestamp_is_accepted_as_the_sdk_does() -> None:
    assert ADAPTER.verify(delivery(with_timestamp(NOW * 1000 + 0.5)), [NEW]).signed_at == pytest.approx(NOW + 0.0005)


GOOD = sig(BODY)
MALFORMED = {
    "empty": "",
    "truncated": GOOD[:-2],
    "over-long": GOOD + "00",
    "uppercase hex": GOOD.upper(),
    "non-hex": GOOD[:-1] + "g",
    "sha256= prefix": "sha256=" + GOOD,
    "two signatures": f"{GOOD},{GOOD}",
    "space inside": GOOD[:20] + " " + GOOD[21:],
    "non-ascii": GOOD[:-1] + "\u00e9",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signature_headers_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(signature=header), [NEW]) == "malformed_signature"


def test_there_is_no_handshake() -> None:
    assert ADAPTER.handshake(delivery(), [NEW]) is None


def test_normalize_issue_update() -> None:
    [event] = ADAPTER.normalize(delivery())
    assert (event.id, event.type, event.subject) == (DELIVERY, "linear.Issue.update", "ENG-11")
    assert event.time == datetime(2023, 11, 14, 22, 13, 19, 877000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_falls_back_to_entity_id_body_hash_and_webhook_timestamp() -> None:
    body = orjson.dumps({"type": "Reaction", "data": {"id": "r-1", "emoji": "+1"}, "webhookTimestamp": NOW * 1000})
    [event] = ADAPTER.normalize(inbound({}, body))
    assert (event.type, event.subject, event.time) == ("linear.Reaction", "r-1", datetime.fromtimestamp(NOW, UTC))
    assert event.id == "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("milliseconds", [-1, 2**53, 9 * 10**14])
def test_a_webhook_timestamp_past_the_years_a_datetime_holds_is_no_time_not_a_crash(milliseconds: int) -> None:
    """9 * 10**14 ms is in the range `verify` reads but past year 9999: the shared `unix_time` reads it as
    no time (the adapter's own copy raised ValueError from normalize)."""
    body = orjson.dumps({"type": "Reaction", "data": {"id": "r-1"}, "webhookTimestamp": milliseconds})
    [event] = ADAPTER.normalize(inbound({}, body))
    assert event.time is None


@pytest.mark.parametrize("body", [b'{"action":"create"}', b'{"type":""}', b'{"type":["Issue"]}'])
def test_normalize_needs_the_type(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({}, body))


@pytest.mark.parametrize("body", [b"", b"[]", b'{"webhookTimestamp": NaN}', b"\xff", b'{"a":[' * 2000, b"{} trailing"])
def test_hostile_json_with_a_valid_signature_is_a_payload_error(body: bytes) -> None:
    """The timestamp lives in the body, so a body that is not a JSON object cannot be verified further."""
    with pytest.raises(PayloadError):
        ADAPTER.verify(delivery(body), [NEW])
    with pytest.raises(PayloadError):
        ADAPTER.normalize(delivery(body))


def test_sample_is_an_issue_create_signed_at_now() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.time) == (
        sample.headers["Linear-Delivery"],
        "linear.Issue.create",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert (event.subject or "").startswith("ENG-")
