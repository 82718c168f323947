"""Stripe adapter: signatures from the stripe SDK, several v1 items, malformed headers, normalization.

The rules every provider keeps are proven for `stripe` by test_conformance.py."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.stripe import StripeAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("stripe")
ADAPTER = StripeAdapter.configure()
OLD = SigningSecret("old", b"whsec_old0123456789abcdefghijklmn")
NEW = SigningSecret("new", b"whsec_new0123456789abcdefghijklmn")
EVENT: dict[str, Any] = {
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    "object": "event",
    "api_version": "2024-06-20",
    "created": 1686089970,
    "type": "invoice.paid",
    "data": {"object": {"id": "in_1NG8Dt2eZvKYlo2C", "object": "invoice", "customer": "cus_NeZwdNtLEOXuvB"}},
}
BODY = orjson.dumps(EVENT)


def sdk_header(body: bytes, secret: SigningSecret, timestamp: int = NOW) -> str:
    """The `Stripe-Signature` header as the stripe SDK computes it."""
    return str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret.value.decode(), timestamp))


GOOD = sdk_header(BODY, NEW)
V1 = GOOD.split(",")[1]
inbound = Endpoint("http://hub.test/hooks/acme/st", BODY)


def signed(header: str, body: bytes = BODY) -> InboundRequest:
    return inbound({"Stripe-Signature": header}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_sdk_vectors_verify_and_still_match_the_installed_sdk(vector: dict[str, Any]) -> None:
    secret = SigningSecret("sdk", vector["secret"].encode())
    body = vector["payload"].encode()
    assert sdk_header(body, secret, vector["timestamp"]) == vector["header"]
    verification = ADAPTER.verify(signed(vector["header"], body), [secret])
    assert verification == type(verification)("hmac-sha256", "sdk", float(vector["timestamp"]))
    ours = ADAPTER.sign(TestRequest(headers={}, body=body), secret, vector["timestamp"] + 0.9)
    assert ours.headers["Stripe-Signature"] == vector["header"]


def test_our_signature_is_accepted_by_the_sdk() -> None:
    now = time.time()
    request = ADAPTER.sign(ADAPTER.sample(now), NEW, now)
    event = stripe.Webhook.construct_event(request.body, request.headers["Stripe-Signature"], NEW.value.decode())
    assert event.type == "invoice.paid"


def test_valid_delivery_reports_key_id_and_signed_timestamp() -> None:
    verification = ADAPTER.verify(signed(sdk_header(BODY, NEW)), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)


def test_key_is_the_whsec_string_not_its_base64_decoding() -> None:
    decoded = SigningSecret("decoded", base64.b64decode(NEW.value[6:] + b"=="))
    assert reason_of(signed(sdk_header(BODY, NEW)), [decoded]) == "no_match"


def test_any_of_several_v1_signatures_and_ignored_schemes() -> None:
    good = sdk_header(BODY, NEW)
    bad = sdk_header(BODY, OLD).split(",")[1]
    header = f"{good.split(',')[0]},{bad},v0=not-hex-and-ignored,{good.split(',')[1]}"
    assert ADAPTER.verify(signed(header), [NEW]).key_id == "new"


def test_malformed_v1_items_are_skipped_as_the_sdk_does_and_a_valid_one_still_matches() -> None:
    timestamp, valid = GOOD.split(",")
    for malformed in ("v1=deadbeef", "v1=", f"v1={V1[3:].upper()}", f"v1={V1[3:]}00"):
        header = f"{timestamp},{malformed},{valid}"
        assert stripe.WebhookSignature.verify_header(BODY.decode(), header, NEW.value.decode(), tolerance=None)
        assert ADAPTER.verify(signed(header), [NEW]).key_id == "new"
    assert reason_of(signed(f"{timestamp},v1=deadbeef,{sdk_header(BODY, OLD).split(',')[1]}"), [NEW]) == "no_match"
    assert reason_of(signed(f"{timestamp},v1=deadbeef,v1=cafe"), [NEW]) == "malformed_signature"
    assert reason_of(signed(f"{timestamp}," + ",".join(["v1=deadbeef"] * 16) + f",{valid}"), [NEW]) == (
        "too_many_signatures"
    )


def test_a_changed_timestamp_does_not_match() -> None:
    assert reason_of(signed(GOOD.replace(f"t={NOW}", f"t={NOW + 1}")), [NEW]) == "no_match"


def test_header_with_only_other_schemes_is_unsupported() -> None:
    assert reason_of(signed(f"t={NOW},v0={V1[3:]}"), [NEW]) == "unsupported_scheme"


MALFORMED = {
    "empty": ("", "malformed_signature"),
    "no timestamp": (V1, "malformed_signature"),
    "two timestamps": (f"t={NOW},{GOOD}", "malformed_signature"),
    "negative timestamp": (GOOD.replace(f"t={NOW}", f"t=-{NOW}"), "malformed_signature"),
    "fractional timestamp": (GOOD.replace(f"t={NOW}", f"t={NOW}.5"), "malformed_signature"),
    "empty v1": (f"t={NOW},v1=", "malformed_signature"),
    "truncated": (GOOD[:-2], "malformed_signature"),
    "over-long": (GOOD + "00", "malformed_signature"),
    "uppercase hex": (f"t={NOW},v1={V1[3:].upper()}", "malformed_signature"),
    "non-hex": (GOOD[:-1] + "z", "malformed_signature"),
    "spaces after commas": (GOOD.replace(",", ", "), "unsupported_scheme"),
    "semicolons": (GOOD.replace(",", ";"), "malformed_signature"),
    "trailing comma": (GOOD + ",", "malformed_signature"),
    "thousands of signatures": (f"t={NOW}," + ",".join([V1] * 5000), "too_many_signatures"),
}


@pytest.mark.parametrize(("header", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str, reason: str) -> None:
    assert reason_of(signed(header), [NEW]) == reason


def test_normalize_invoice_paid() -> None:
    [event] = ADAPTER.normalize(signed(GOOD))
    assert event.id == "evt_1NG8Du2eZvKYlo2CUI79vXWy"
    assert event.type == "stripe.invoice.paid"
    assert event.subject == "cus_NeZwdNtLEOXuvB"
    assert event.time == datetime(2023, 6, 6, 22, 19, 30, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize("customer", [None, "", {"id": "cus_1"}])
def test_normalize_subject_falls_back_to_object_id_and_time_to_none(customer: object) -> None:
    body = orjson.dumps({**EVENT, "created": "yesterday", "data": {"object": {"id": "prod_1", "customer": customer}}})
    [event] = ADAPTER.normalize(signed(GOOD, body))
    assert (event.subject, event.time) == ("prod_1", None)


@pytest.mark.parametrize("missing", ["id", "type"])
def test_normalize_needs_id_and_type(missing: str) -> None:
    body = orjson.dumps({key: value for key, value in EVENT.items() if key != missing})
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(GOOD, body))


HOSTILE = [b"", b'"evt_1"', b'{"id": NaN}', b'{"id": 1e999}', b"\xc3\x28", b'{"a":' * 3000, b'{"id":"\\udc00"}']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_invoice_paid_event() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).signed_at == NOW
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.time) == (
        "stripe.invoice.paid",
        "cus_NeZwdNtLEOXuvB",
        datetime.fromtimestamp(NOW, UTC),
    )
    assert event.id.startswith("evt_")


@given(
    payload=st.text(min_size=1, max_size=200), key=st.text(min_size=1, max_size=40), timestamp=st.integers(0, 10**11)
)
def test_sign_is_what_the_sdk_signs_for_any_body_key_and_time(payload: str, key: str, timestamp: int) -> None:
    secret, body = SigningSecret("k", key.encode()), payload.encode()
    header = ADAPTER.sign(TestRequest(headers={}, body=body), secret, timestamp).headers["Stripe-Signature"]
    assert header == sdk_header(body, secret, timestamp)
