"""Svix adapter: svix SDK vectors, `svix-*` and white-label `webhook-*` headers, failures, round trips."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError, ReplayWindowError, SignatureError
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from adapters.webhooks.svix import SvixAdapter
from hub.ingress.handler import check_replay_window
from tests.adapters.refusals import refusal_reason

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "svix.json").read_text())["vectors"]
NOW = 1_700_000_000
ADAPTER = SvixAdapter.configure()
OLD = SigningSecret("old", b"whsec_" + base64.b64encode(b"o" * 24))
NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 24))
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = orjson.dumps(
    {"type": "invoice.paid", "timestamp": "2023-11-14T22:13:20.5Z", "data": {"id": "inv_1", "amount": 4200}}
)
SVIX = ("svix-id", "svix-timestamp", "svix-signature")
STANDARD = ("webhook-id", "webhook-timestamp", "webhook-signature")


def svix_signature(secret: SigningSecret, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """`svix-signature` computed independently: HMAC-SHA256 keyed by the base64 after `whsec_`."""
    key = base64.b64decode(secret.value.removeprefix(b"whsec_") + b"==")
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


GOOD = svix_signature(NEW, MSG_ID, NOW, BODY)


def inbound(headers: dict[str, str] | Iterable[tuple[str, str]], body: bytes = BODY) -> InboundRequest:
    return InboundRequest(
        method="POST", url="http://hub.test/hooks/acme/svix", headers=headers, body=body, received_at=NOW
    )


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


@pytest.mark.parametrize("signer", [OLD, NEW])
def test_rotation_accepts_either_secret_and_names_it(signer: SigningSecret) -> None:
    verification = ADAPTER.verify(delivery(svix_signature(signer, MSG_ID, NOW, BODY)), [OLD, NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", signer.key_id, NOW)


def test_any_of_several_signatures_and_v1a_items_are_ignored() -> None:
    header = f"v1a,{base64.b64encode(b'e' * 64).decode()} {svix_signature(OLD, MSG_ID, NOW, BODY)} {GOOD}"
    assert ADAPTER.verify(delivery(header), [NEW]).key_id == "new"


def test_tampering_and_wrong_secret_do_not_match() -> None:
    assert reason_of(delivery(body=BODY.replace(b"paid", b"void")), [NEW]) == "no_match"
    assert reason_of(delivery(timestamp=str(NOW + 1)), [NEW]) == "no_match"
    assert reason_of(delivery(msg_id=MSG_ID + "x"), [NEW]) == "no_match"
    assert reason_of(delivery(), [OLD]) == "no_match"


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


@pytest.mark.parametrize("name", SVIX)
def test_duplicated_headers_are_refused(name: str) -> None:
    headers = list(zip(SVIX, (MSG_ID, str(NOW), GOOD), strict=True))
    assert reason_of(inbound([*headers, (name.upper(), dict(headers)[name])]), [NEW]) == "duplicate_header"


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


@pytest.mark.parametrize(("age", "reason"), [(301, "timestamp_too_old"), (-301, "timestamp_in_future")])
def test_stale_and_future_timestamps_are_outside_the_window(age: int, reason: str) -> None:
    signed_at = NOW - age
    request = delivery(svix_signature(NEW, MSG_ID, signed_at, BODY), timestamp=str(signed_at))
    verification = ADAPTER.verify(request, [NEW])
    check_replay_window(verification.signed_at, NOW - 1 if age > 0 else NOW + 1, ADAPTER.replay_window_s or 0)
    with pytest.raises(ReplayWindowError) as caught:
        check_replay_window(verification.signed_at, NOW, ADAPTER.replay_window_s or 0)
    assert caught.value.reason == reason


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


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped (staying in ASCII)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


@settings(max_examples=60)
@given(
    payload=st.text(min_size=1, max_size=200),
    key=st.binary(min_size=24, max_size=64),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,40}", fullmatch=True),
    timestamp=st.integers(0, 10**11),
    header=st.sampled_from(SVIX),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_round_trip_and_any_flipped_bit_is_rejected(
    payload: str, key: bytes, msg_id: str, timestamp: int, header: str, index: int, bit: int
) -> None:
    secret, body = SigningSecret("k", b"whsec_" + base64.b64encode(key)), payload.encode()
    headers = ADAPTER.sign(TestRequest(headers={"svix-id": msg_id}, body=body), secret, timestamp).headers
    assert headers["svix-signature"] == svix_signature(secret, msg_id, timestamp, body)
    assert ADAPTER.verify(inbound(headers, body), [secret]).signed_at == timestamp
    position = index % len(body)
    with pytest.raises(SignatureError):
        ADAPTER.verify(
            inbound(headers, body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]), [secret]
        )
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound({**headers, header: flip(headers[header], index, bit)}, body), [secret])
