"""Svix adapter: svix SDK vectors, `svix-*` and white-label `webhook-*` headers, malformed headers.

The rules every provider keeps are proven for `svix` by test_conformance.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from adapters.webhooks.svix import SvixAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors
from tests.adapters.svix_senders import svix_signature

VECTORS = vectors("svix")
ADAPTER = SvixAdapter.configure()
NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 24))
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = orjson.dumps(
    {"type": "invoice.paid", "timestamp": "2023-11-14T22:13:20.5Z", "data": {"id": "inv_1", "amount": 4200}}
)
SVIX = ("svix-id", "svix-timestamp", "svix-signature")
STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


GOOD = svix_signature(NEW, MSG_ID, NOW, BODY)
inbound = Endpoint("http://hub.test/hooks/acme/svix", BODY)


def delivery(
    signature: str = GOOD,
    body: bytes = BODY,
    msg_id: str = MSG_ID,
    timestamp: str = str(NOW),
    names: tuple[str, ...] = SVIX,
) -> InboundRequest:
    return inbound(dict(zip(names, (msg_id, timestamp, signature), strict=True)), body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
@pytest.mark.parametrize("names", [SVIX, STANDARD], ids=["svix", "white-label"])
def test_sdk_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any], names: tuple[str, ...]) -> None:
    secret, body = SigningSecret("sdk", vector["secret"].encode()), vector["payload"].encode()
    request = delivery(vector["signature"], body, vector["msg_id"], str(vector["timestamp"]), names)
    assert ADAPTER.verify(request, [secret]) == Verification("hmac-sha256", "sdk", float(vector["timestamp"]))
    ours = ADAPTER.sign(TestRequest(headers={"svix-id": vector["msg_id"]}, body=body), secret, vector["timestamp"])
    assert ours.headers == {
        "svix-id": vector["msg_id"],
        "svix-timestamp": str(vector["timestamp"]),
        "svix-signature": vector["signature"],
    }
    assert vector["signature"] == svix_signature(secret, vector["msg_id"], vector["timestamp"], body)


def test_is_a_standard_webhooks_adapter_with_its_own_facts() -> None:
    assert isinstance(ADAPTER, StandardWebhooksAdapter)
    assert (ADAPTER.name, ADAPTER.replay_window_s, ADAPTER.scheme.delivery_timeout_s) == ("svix", 300, 15)
    assert ADAPTER.scheme.dedupe_key_signed


def test_any_of_several_signatures_and_v1a_items_are_ignored() -> None:
    old = SigningSecret("old", b"whsec_" + base64.b64encode(b"o" * 24))
    header = f"v1a,{base64.b64encode(b'e' * 64).decode()} {svix_signature(old, MSG_ID, NOW, BODY)} {GOOD}"
    assert ADAPTER.verify(delivery(header), [NEW]).key_id == "new"


@pytest.mark.parametrize("names", [SVIX, STANDARD], ids=["svix", "white-label"])
def test_malformed_items_are_skipped_and_a_valid_one_still_matches(names: tuple[str, ...]) -> None:
    assert ADAPTER.verify(delivery(f"v1,AAAA {GOOD}", names=names), [NEW]).key_id == "new"
    assert reason_of(delivery("v1,AAAA v1,BBBB", names=names), [NEW]) == "malformed_signature"


def test_a_changed_id_or_timestamp_does_not_match() -> None:
    assert reason_of(delivery(timestamp=str(NOW + 1)), [NEW]) == "no_match"
    assert reason_of(delivery(msg_id=MSG_ID + "x"), [NEW]) == "no_match"


@pytest.mark.parametrize("missing", range(3))
def test_each_svix_header_is_required_and_named_in_the_refusal(missing: int) -> None:
    headers = dict(zip(SVIX, (MSG_ID, str(NOW), GOOD), strict=True))
    del headers[SVIX[missing]]
    with pytest.raises(SignatureError, match=SVIX[missing]):
        ADAPTER.verify(inbound(headers), [NEW])
    assert reason_of(inbound(headers), [NEW]) == "missing_header"
    assert reason_of(inbound({**headers, STANDARD[missing]: [MSG_ID, str(NOW), GOOD][missing]}), [NEW]) == (
        "missing_header"  # one family as a whole, never a mix
    )


def test_no_headers_at_all_names_svix_id() -> None:
    with pytest.raises(SignatureError, match="svix-id"):
        ADAPTER.verify(inbound({}), [NEW])


def test_svix_headers_win_over_webhook_headers() -> None:
    headers = {
        **dict(zip(SVIX, (MSG_ID, str(NOW), GOOD), strict=True)),
        "webhook-signature": "v1,bogus",
        "webhook-id": "x",
    }
    assert ADAPTER.verify(inbound(headers), [NEW]).key_id == "new"
    assert reason_of(inbound({**headers, "svix-signature": "v1," + GOOD[3:][::-1]}), [NEW]) == "malformed_signature"


MALFORMED = {
    "empty signature": {"svix-signature": ""},
    "truncated": {"svix-signature": GOOD[:-4]},
    "unpadded": {"svix-signature": GOOD.rstrip("=")},
    "urlsafe": {"svix-signature": "v1," + base64.urlsafe_b64encode(b"\xfb" * 32).decode()},
    "no comma": {"svix-signature": GOOD.replace(",", "")},
    "timestamp fractional": {"svix-timestamp": f"{NOW}.0"},
    "timestamp ms": {"svix-timestamp": f"{NOW}000000"},
    "id with a dot": {"svix-id": "msg.1"},
    "id with a space": {"svix-id": "msg 1"},
}


@pytest.mark.parametrize("changed", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(changed: dict[str, str]) -> None:
    headers = {**dict(zip(SVIX, (MSG_ID, str(NOW), GOOD), strict=True)), **changed}
    assert reason_of(inbound(headers), [NEW]) == "malformed_signature"


@pytest.mark.parametrize("body", [BODY, b'{"type": "ping", "challenge": "x"}', b"{}"])
def test_svix_has_no_handshake(body: bytes) -> None:
    assert ADAPTER.handshake(delivery(svix_signature(NEW, MSG_ID, NOW, body), body), [NEW]) is None


def test_check_secret_refuses_short_whsec_keys() -> None:
    with pytest.raises(ValueError, match="k1"):
        ADAPTER.check_secret(SigningSecret("k1", b"whsec_" + base64.b64encode(b"k" * 16)))


@pytest.mark.parametrize("names", [SVIX, STANDARD], ids=["svix", "white-label"])
def test_normalize_reads_id_type_subject_and_time(names: tuple[str, ...]) -> None:
    [event] = ADAPTER.normalize(delivery(names=names))
    assert (event.id, event.type, event.subject) == (MSG_ID, "svix.invoice.paid", "inv_1")
    assert event.time == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


def test_normalize_without_type_subject_or_time() -> None:
    [event] = ADAPTER.normalize(delivery(body=b'{"type": 3, "timestamp": "2023-11-14", "data": {"id": 1}}'))
    assert (event.type, event.subject, event.time) == ("svix.event", None, None)
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound({}))


HOSTILE = [b"", b"[]", b'{"type": NaN}', b"\xed\xa0\x80", b'{"a":[' * 2000, b'{"type": "x"} trailing']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={"svix-id": MSG_ID}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_round_trips_under_svix_names_only() -> None:
    sample = ADAPTER.sample(NOW)
    signed = ADAPTER.sign(sample, NEW, NOW)
    assert {name.lower() for name in signed.headers} == {"content-type", *SVIX}
    assert signed.headers["svix-id"] == sample.headers["svix-id"] != ADAPTER.sample(NOW).headers["svix-id"]
    assert ADAPTER.verify(inbound(signed.headers, sample.body), [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(inbound(signed.headers, sample.body))
    assert (event.id, event.type) == (sample.headers["svix-id"], "svix.user.created")
    assert ADAPTER.sign(TestRequest(headers={"webhook-id": MSG_ID}, body=BODY), NEW, NOW).headers["svix-id"] == MSG_ID


@settings(max_examples=60)
@given(
    payload=st.text(min_size=1, max_size=200),
    key=st.binary(min_size=24, max_size=64),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,40}", fullmatch=True),
    timestamp=st.integers(0, 10**11),
)
def test_sign_is_the_svix_algorithm_for_any_body_key_id_and_time(
    payload: str, key: bytes, msg_id: str, timestamp: int
) -> None:
    secret, body = SigningSecret("k", b"whsec_" + base64.b64encode(key)), payload.encode()
    headers = ADAPTER.sign(TestRequest(headers={"svix-id": msg_id}, body=body), secret, timestamp).headers
    assert headers["svix-signature"] == svix_signature(secret, msg_id, timestamp, body)
