"""HubSpot adapter: SDK vectors, the v3 reference, what v3 signs, URI decoding, batches.

The rules every provider keeps (round trips, rotation, tampering, missing headers with the legacy v1 one
still present, repeated headers, the five-minute window, dedupe keys) are proven for `hubspot` by
test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError
from adapters.webhooks.hubspot import HubSpotAdapter
from tests.adapters.harness import Endpoint, refusal_reason, vectors

VECTORS = vectors("hubspot")
NOW_MS = 1_700_000_000_123
NOW = NOW_MS / 1000
URL = "https://hooks.example.com/hooks/acme/hubspot"
ADAPTER = HubSpotAdapter.configure({"publicUrl": URL})
OLD = SigningSecret("old", b"0f1e2d3c-old0-4b5a-9687-a1b2c3d4e5f6")
NEW = SigningSecret("new", b"7f2d1c3b-8e9a-4b5c-9d6e-0f1a2b3c4d5e")
EVENTS: list[dict[str, Any]] = [
    {"eventId": 100, "subscriptionId": 2338841, "portalId": 62515, "appId": 1160452, "occurredAt": 1700000000000,
     "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 123, "changeSource": "CRM_UI"},
    {"eventId": 101, "subscriptionId": 2338842, "portalId": 62515, "appId": 1160452, "occurredAt": 1700000000100,
     "subscriptionType": "deal.propertyChange", "attemptNumber": 1, "objectId": "456", "propertyName": "dealstage",
     "propertyValue": "closedwon", "changeSource": "CRM_UI"},
]  # fmt: skip
BODY = orjson.dumps(EVENTS)


def reference(secret: SigningSecret, uri: str, body: bytes, timestamp: int, method: str = "POST") -> str:
    """The v3 signature as HubSpot documents it (and hubspot-api-client computes it for UTF-8 bodies)."""
    content = f"{method}{uri}".encode() + body + str(timestamp).encode()
    return base64.b64encode(hmac.new(secret.value, content, hashlib.sha256).digest()).decode()


GOOD = reference(NEW, URL, BODY, NOW_MS)
inbound = Endpoint(URL, BODY, received_at=NOW)


def signed(
    signature: str = GOOD, timestamp: str = str(NOW_MS), body: bytes = BODY, url: str = URL, method: str = "POST"
) -> InboundRequest:
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp}
    return inbound(headers, body, url=url, method=method)


def reason_of(request: InboundRequest, secrets: list[SigningSecret], adapter: HubSpotAdapter = ADAPTER) -> str:
    return refusal_reason(adapter, request, secrets)


@pytest.mark.parametrize("vector", VECTORS)
def test_sdk_vectors_verify_and_are_what_sign_produces(vector: dict[str, Any]) -> None:
    secret = SigningSecret("sdk", vector["secret"].encode())
    url, body, timestamp = vector.get("url", vector["uri"]), vector["payload"].encode(), vector["timestamp"]
    adapter = HubSpotAdapter.configure({"publicUrl": url})
    request = signed(vector["signature"], str(timestamp), body, url=url, method=vector["method"])
    assert adapter.verify(request, [secret]) == Verification("hmac-sha256", "sdk", timestamp / 1000)
    assert HubSpotAdapter.configure().verify(request, [secret]).key_id == "sdk"  # the URL received is the default
    ours = adapter.sign(TestRequest(headers={}, body=body), secret, timestamp / 1000)
    assert ours.headers["X-HubSpot-Signature-v3"] == vector["signature"]
    assert ours.headers["X-HubSpot-Request-Timestamp"] == str(timestamp)


def test_listed_escapes_are_decoded_and_others_kept() -> None:
    received = f"{URL}?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%26%3D%2B%20%3a"
    uri = f"{URL}?a=:/?@!$'()*,;&b=%26%3D%2B%20%3a"
    request = signed(reference(NEW, uri, BODY, NOW_MS), url=received)
    assert HubSpotAdapter.configure().verify(request, [NEW]).key_id == "new"
    assert reason_of(signed(reference(NEW, received, BODY, NOW_MS), url=received), [NEW]) == "no_match"


def test_public_url_option_replaces_the_rewritten_url_and_is_needed_to_sign() -> None:
    behind_proxy = "http://10.0.0.7:8080/hooks/acme/hubspot"
    assert ADAPTER.verify(signed(url=behind_proxy), [NEW]).key_id == "new"
    assert reason_of(signed(url=behind_proxy), [NEW], HubSpotAdapter.configure()) == "no_match"
    with pytest.raises(ValueError, match="publicUrl"):
        HubSpotAdapter.configure().sign(TestRequest(headers={}, body=BODY), NEW, NOW)


@pytest.mark.parametrize(
    "url", ["hooks.example.com/x", "ftp://example.com/x", "https://example.com/x#f", "https://a b"]
)
def test_public_url_must_be_an_absolute_http_url(url: str) -> None:
    for options in ({"publicUrl": url}, {"publicUrl": URL, "other": 1}):
        with pytest.raises(ValidationError):
            HubSpotAdapter.configure(options)


def test_valid_delivery_reports_key_id_and_signed_timestamp_in_seconds_and_is_no_handshake() -> None:
    verification = ADAPTER.verify(signed(), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", NOW)
    assert ADAPTER.handshake(signed(), [NEW]) is None


def test_a_changed_timestamp_method_or_url_does_not_match() -> None:
    assert reason_of(signed(timestamp=str(NOW_MS + 1)), [NEW]) == "no_match"
    assert reason_of(signed(method="PUT"), [NEW]) == "no_match"
    assert reason_of(signed(url=URL + "/other"), [NEW], HubSpotAdapter.configure()) == "no_match"


def test_hubspots_own_window_is_five_minutes() -> None:
    assert ADAPTER.replay_window_s == 300.0  # the window itself is held by test_conformance.py


MALFORMED = {
    "empty": ("", str(NOW_MS)),
    "truncated": (GOOD[:-4], str(NOW_MS)),
    "over-long": (base64.b64encode(b"x" * 33).decode(), str(NOW_MS)),
    "unpadded": (GOOD.rstrip("="), str(NOW_MS)),
    "prefixed": ("sha256=" + GOOD, str(NOW_MS)),
    "hex": (base64.b64decode(GOOD).hex(), str(NOW_MS)),
    "urlsafe": (base64.urlsafe_b64encode(b"\xfb" * 32).decode(), str(NOW_MS)),
    "space for plus": (base64.b64encode(b"\xfb" * 32).decode().replace("+", " "), str(NOW_MS)),
    "non-ascii": (GOOD[:-2] + "é=", str(NOW_MS)),
    "timestamp in seconds with fraction": (GOOD, f"{NOW}"),
    "timestamp negative": (GOOD, f"-{NOW_MS}"),
    "timestamp empty": (GOOD, ""),
    "timestamp huge": (GOOD, "9" * 40),
}


@pytest.mark.parametrize(("signature", "timestamp"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(signature: str, timestamp: str) -> None:
    assert reason_of(signed(signature, timestamp), [NEW]) == "malformed_signature"


def test_normalize_gives_one_event_per_element() -> None:
    first, second = ADAPTER.normalize(signed())
    assert (first.id, first.type, first.subject) == ("62515-2338841-100", "hubspot.contact.creation", "123")
    assert (second.id, second.type, second.subject) == ("62515-2338842-101", "hubspot.deal.propertyChange", "456")
    assert first.time == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert second.time == datetime(2023, 11, 14, 22, 13, 20, 100_000, tzinfo=UTC)
    assert [first.data, second.data] == EVENTS


def test_a_retry_keeps_the_dedupe_key_and_another_subscription_does_not() -> None:
    retry = [{**EVENTS[0], "attemptNumber": 3}, {**EVENTS[0], "subscriptionId": 99}]
    [again, other] = ADAPTER.normalize(signed(body=orjson.dumps(retry)))
    assert again.id == "62515-2338841-100"
    assert other.id == "62515-99-100"


@pytest.mark.parametrize(
    "body",
    [b"{}", b"[]", b"[1]", b'[{"eventId": 1, "subscriptionId": 2, "portalId": 3}]',
     b'[{"eventId": -1, "subscriptionId": 2, "portalId": 3, "subscriptionType": "contact.creation"}]',
     b'[{"eventId": 1, "subscriptionId": 2, "subscriptionType": "contact.creation"}]',
     b'[{"eventId": 1.5, "subscriptionId": 2, "portalId": 3, "subscriptionType": "contact.creation"}]'],
)  # fmt: skip
def test_normalize_refuses_events_without_type_or_ids(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(body=body))


def test_normalize_without_object_or_time() -> None:
    body = b'[{"eventId": "7", "subscriptionId": 2, "portalId": 3, "subscriptionType": "x", "occurredAt": "now"}]'
    [event] = ADAPTER.normalize(signed(body=body))
    assert (event.id, event.subject, event.time) == ("3-2-7", None, None)


HOSTILE = [b"", b'[{"eventId": NaN}]', b"[1e999]", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'[{"a":"\\ud800"}]']


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = inbound(ADAPTER.sign(TestRequest(headers={}, body=body), NEW, NOW).headers, body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_a_realistic_batch_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 300 <= len(sample.body) <= 2000
    request = ADAPTER.sign(sample, NEW, NOW)
    assert request.headers["X-HubSpot-Signature-Version"] == "v1"
    assert request.headers["X-HubSpot-Signature"] == hashlib.sha256(NEW.value + sample.body).hexdigest()
    assert ADAPTER.verify(inbound(request.headers, sample.body), [NEW]).signed_at == NOW
    created, changed = ADAPTER.normalize(inbound(request.headers, sample.body))
    assert (created.type, changed.type) == ("hubspot.contact.creation", "hubspot.contact.propertyChange")
    assert created.subject == changed.subject
    assert created.id != changed.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[1].id


@settings(max_examples=150)
@given(
    body=st.binary(min_size=1, max_size=300), key=st.binary(min_size=1, max_size=64), timestamp=st.integers(0, 10**14)
)
def test_sign_is_the_v3_reference_for_any_body_key_and_time(body: bytes, key: bytes, timestamp: int) -> None:
    secret = SigningSecret("k", key)
    headers = ADAPTER.sign(TestRequest(headers={}, body=body), secret, timestamp / 1000).headers
    assert headers["X-HubSpot-Signature-v3"] == reference(secret, URL, body, timestamp)
    assert headers["X-HubSpot-Request-Timestamp"] == str(timestamp)
