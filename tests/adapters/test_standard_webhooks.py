"""Standard Webhooks adapter: the published vector, the `standardwebhooks` library, malformed headers, secrets.

The rules every provider keeps are proven for `standard-webhooks` by test_conformance.py."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("standard-webhooks")
ADAPTER = StandardWebhooksAdapter.configure()
OLD = SigningSecret("old", b"whsec_" + base64.b64encode(b"o" * 32))
NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 32))
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = orjson.dumps(
    {
        "type": "contact.created",
        "timestamp": "2022-11-03T20:26:10.344522Z",
        "data": {"id": "1f81eb52-5198-4599-803e-771906343485", "email": "ada@example.com"},
    }
)
inbound = Endpoint("http://hub.test/hooks/acme/sw", BODY)


def lib_signature(secret: SigningSecret, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value as the `standardwebhooks` library computes it."""
    return Webhook(secret.value.decode()).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())


def delivery(signature: str, body: bytes = BODY, msg_id: str = MSG_ID, timestamp: str = str(NOW)) -> InboundRequest:
    return inbound({"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


GOOD = lib_signature(NEW, MSG_ID, NOW, BODY)
SIG = GOOD.split(",", 1)[1]


@pytest.mark.parametrize("vector", VECTORS)
def test_published_vector_verifies_and_is_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("spec", vector["secret"].encode())
    body = vector["payload"].encode()
    request = delivery(vector["signature"], body, vector["msg_id"], str(vector["timestamp"]))
    assert ADAPTER.verify(request, [secret]).signed_at == vector["timestamp"]
    ours = ADAPTER.sign(TestRequest(headers={"webhook-id": vector["msg_id"]}, body=body), secret, vector["timestamp"])
    assert ours.headers["webhook-signature"] == vector["signature"]
    assert lib_signature(secret, vector["msg_id"], vector["timestamp"], body) == vector["signature"]


def test_our_signature_is_accepted_by_the_library() -> None:
    now = time.time()
    request = ADAPTER.sign(ADAPTER.sample(now), NEW, now)
    assert Webhook(NEW.value.decode()).verify(request.body, request.headers)["type"] == "user.created"


def test_raw_byte_secrets_work_as_in_the_library() -> None:
    raw = SigningSecret("raw", b"0123456789abcdefghijklmnopqrstuv")
    signature = Webhook(raw.value).sign(MSG_ID, datetime.fromtimestamp(NOW, UTC), BODY.decode())
    assert ADAPTER.verify(delivery(signature), [raw]).key_id == "raw"


def test_valid_delivery_reports_scheme_key_id_and_signed_timestamp() -> None:
    verification = ADAPTER.verify(delivery(GOOD), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_several_signatures_and_other_versions_are_ignored() -> None:
    header = f"v1a,{base64.b64encode(b'e' * 64).decode()} v2,{SIG} {lib_signature(OLD, MSG_ID, NOW, BODY)} {GOOD}"
    assert ADAPTER.verify(delivery(header), [NEW]).key_id == "new"


def test_malformed_items_are_skipped_as_the_library_does_and_a_valid_one_still_matches() -> None:
    now = int(time.time())  # the library checks its own window against the clock
    for malformed in ("v1,AAAA", "v1,not-base64!", "v1," + base64.b64encode(b"x" * 33).decode()):
        header = f"{malformed} {lib_signature(NEW, MSG_ID, now, BODY)}"
        headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(now), "webhook-signature": header}
        assert Webhook(NEW.value.decode()).verify(BODY, headers)["type"] == "contact.created"
        assert ADAPTER.verify(delivery(header, timestamp=str(now)), [NEW]).key_id == "new"
    assert reason_of(delivery(f"v1,AAAA {lib_signature(OLD, MSG_ID, NOW, BODY)}"), [NEW]) == "no_match"


def test_a_header_of_only_malformed_items_says_how_many() -> None:
    with pytest.raises(SignatureError, match="all 2 v1 items are malformed") as caught:
        ADAPTER.verify(delivery("v1,AAAA v1,BBBB"), [NEW])
    assert caught.value.reason == "malformed_signature"


def test_malformed_items_still_count_towards_the_cap() -> None:
    assert reason_of(delivery(" ".join(["v1,AAAA"] * 16 + [GOOD])), [NEW]) == "too_many_signatures"


def test_a_changed_id_or_timestamp_does_not_match() -> None:
    assert reason_of(delivery(GOOD, timestamp=str(NOW + 1)), [NEW]) == "no_match"
    assert reason_of(delivery(GOOD, msg_id=MSG_ID + "x"), [NEW]) == "no_match"


@pytest.mark.parametrize("header", ["v1a,", f"v1a,{SIG}", f"v2,{SIG} v1a,{SIG}"])
def test_only_unsupported_versions(header: str) -> None:
    assert reason_of(delivery(header), [NEW]) == "unsupported_scheme"


MALFORMED = {
    "empty": ("", {}),
    "version only": ("v1", {}),
    "empty v1": ("v1,", {}),
    "truncated": (GOOD[:-4], {}),
    "over-long": ("v1," + base64.b64encode(b"x" * 33).decode(), {}),
    "unpadded": (GOOD.rstrip("="), {}),
    "not base64": (GOOD[:-2] + "!=", {}),
    "hex instead of base64": ("v1," + base64.b64decode(SIG).hex(), {}),
    "double space": (f"{GOOD}  {GOOD}", {}),
    "comma separated": (f"{GOOD},{GOOD}", {}),
    "timestamp not an integer": (GOOD, {"webhook-timestamp": f"{NOW}.0"}),
    "timestamp negative": (GOOD, {"webhook-timestamp": f"-{NOW}"}),
    "timestamp huge": (GOOD, {"webhook-timestamp": "9" * 40}),
    "id with a dot": (GOOD, {"webhook-id": "msg.1"}),
    "id empty": (GOOD, {"webhook-id": ""}),
    "id with a space": (GOOD, {"webhook-id": "msg 1"}),
}


@pytest.mark.parametrize(("signature", "headers"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(signature: str, headers: dict[str, str]) -> None:
    base = {"webhook-id": MSG_ID, "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert reason_of(inbound({**base, **headers}), [NEW]) == "malformed_signature"


def test_thousands_of_signatures_are_refused() -> None:
    assert reason_of(delivery(" ".join([GOOD] * 5000)), [NEW]) == "too_many_signatures"


@pytest.mark.parametrize(
    "value",
    [
        b"whsec_" + base64.b64encode(b"k" * 24),
        b"whsec_" + base64.b64encode(b"k" * 64),
        b"whsec_" + base64.b64encode(b"k" * 32).rstrip(b"="),
        b"raw key bytes",
    ],
)
def test_check_secret_accepts_spec_and_raw_keys(value: bytes) -> None:
    ADAPTER.check_secret(SigningSecret("ok", value))


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"whsec_",
        b"whsec_" + base64.b64encode(b"k" * 16),
        b"whsec_" + base64.b64encode(b"k" * 65),
        b"whsec_not*base64*at*all*but*long*enough",
    ],
)
def test_check_secret_refuses_bad_keys_naming_only_the_key_id(value: bytes) -> None:
    with pytest.raises(ValueError, match="the-key-id") as caught:
        ADAPTER.check_secret(SigningSecret("the-key-id", value))
    if encoded := value.decode()[len("whsec_") :]:
        assert encoded not in str(caught.value)


def test_normalize_reads_id_type_and_time() -> None:
    [event] = ADAPTER.normalize(delivery(GOOD))
    assert event.id == MSG_ID
    assert event.type == "standard-webhooks.contact.created"
    assert event.time == datetime(2022, 11, 3, 20, 26, 10, 344522, tzinfo=UTC)
    assert event.subject is None
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize(
    ("body", "event_type"),
    [
        ({"type": 7, "timestamp": "2022-11-03"}, "standard-webhooks.event"),
        ({"timestamp": "2022-11-03T20:26:10"}, "standard-webhooks.event"),
        ({"type": "", "timestamp": "not a time"}, "standard-webhooks.event"),
        ({"type": "user.created", "timestamp": 1667507170}, "standard-webhooks.user.created"),
    ],
)
def test_normalize_without_usable_type_or_rfc3339_time(body: dict[str, Any], event_type: str) -> None:
    [event] = ADAPTER.normalize(delivery(GOOD, orjson.dumps(body)))
    assert (event.type, event.time) == (event_type, None)


HOSTILE = [b"", b"[]", b'{"type": NaN}', b'{"t": -1e400}', b"\xed\xa0\x80", b'{"a":[' * 2000, b'{"type": "x"} trailing']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = ADAPTER.sign(TestRequest(headers={"webhook-id": MSG_ID}, body=body), NEW, NOW)
    assert ADAPTER.verify(inbound(request.headers, body), [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound(request.headers, body))


def test_sample_is_a_realistic_user_created_event() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    assert sample.headers["webhook-id"].startswith("msg_")
    assert sample.headers["webhook-id"] != ADAPTER.sample(NOW).headers["webhook-id"]
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.id, event.type, event.time) == (
        sample.headers["webhook-id"],
        "standard-webhooks.user.created",
        datetime.fromtimestamp(NOW, UTC),
    )


def test_sign_adds_a_message_id_when_missing() -> None:
    headers = ADAPTER.sign(TestRequest(headers={}, body=BODY), NEW, NOW).headers
    assert headers["webhook-id"].startswith("msg_")
    assert ADAPTER.verify(inbound(headers), [NEW]).key_id == "new"


@given(
    payload=st.text(min_size=1, max_size=200),
    key=st.binary(min_size=24, max_size=64),
    msg_id=st.from_regex(r"msg_[A-Za-z0-9]{1,40}", fullmatch=True),
    timestamp=st.integers(0, 10**11),
)
def test_sign_is_what_the_library_signs_for_any_body_key_id_and_time(
    payload: str, key: bytes, msg_id: str, timestamp: int
) -> None:
    secret, body = SigningSecret("k", b"whsec_" + base64.b64encode(key)), payload.encode()
    headers = ADAPTER.sign(TestRequest(headers={"webhook-id": msg_id}, body=body), secret, timestamp).headers
    assert headers["webhook-signature"] == lib_signature(secret, msg_id, timestamp, body)
