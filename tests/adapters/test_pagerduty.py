"""PagerDuty adapter: go-pagerduty's vector, PagerDuty-side rotation lists, malformed headers, normalization.

The rules every provider keeps are proven for `pagerduty` by test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError
from adapters.webhooks.pagerduty import PagerDutyAdapter
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

VECTORS = vectors("pagerduty")
ADAPTER = PagerDutyAdapter.configure()
OLD = SigningSecret("old", b"pd-old-0123456789abcdefghijklmnopqrstuvwxyz")
NEW = SigningSecret("new", b"pd-new-0123456789abcdefghijklmnopqrstuvwxyz")
EVENT: dict[str, Any] = {
    "event": {
        "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
        "event_type": "incident.priority_updated",
        "resource_type": "incident",
        "occurred_at": "2020-10-02T18:45:22.169Z",
        "agent": {"id": "PLH1HKV", "type": "user_reference", "summary": "Tenex Engineer"},
        "client": {"name": "PagerDuty"},
        "data": {
            "id": "PGR0VU2",
            "type": "incident",
            "status": "triggered",
            "title": "A little bump in the road",
            "service": {"id": "PF9KMXH", "type": "service_reference", "summary": "API Service"},
        },
    }
}
BODY = orjson.dumps(EVENT)


def v1(secret: SigningSecret, body: bytes = BODY) -> str:
    return "v1=" + hmac.new(secret.value, body, hashlib.sha256).hexdigest()


GOOD = v1(NEW)
inbound = Endpoint("http://hub.test/hooks/acme/pd", BODY)


def signed(header: str, body: bytes = BODY) -> InboundRequest:
    return inbound({"X-PagerDuty-Signature": header, "X-Webhook-Id": "b8d5bd2f-6c2f-4ff4-a1a3-9b7b0d3c2e1f"}, body)


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


def test_go_pagerduty_vector_verifies_refuses_its_mismatch_and_is_what_sign_produces() -> None:
    vector = VECTORS[0]
    secret, body = SigningSecret("pd", vector["secrets"][0].encode()), vector["payload"].encode()
    assert ADAPTER.verify(signed(vector["header"], body), [secret]).key_id == "pd"
    assert reason_of(signed(vector["refused_header"], body), [secret]) == "no_match"
    assert ADAPTER.sign(TestRequest(headers={}, body=body), secret, NOW).headers == {
        "X-PagerDuty-Signature": vector["header"]
    }


def test_rotation_vector_verifies_with_each_of_its_secrets() -> None:
    vector = VECTORS[1]
    body = vector["payload"].encode()
    secrets = [SigningSecret(f"s{i}", value.encode()) for i, value in enumerate(vector["secrets"])]
    for secret in secrets:
        assert ADAPTER.verify(signed(vector["header"], body), [secret]).key_id == secret.key_id
    ours = [ADAPTER.sign(TestRequest(headers={}, body=body), s, NOW).headers["X-PagerDuty-Signature"] for s in secrets]
    assert ",".join(ours) == vector["header"]


def test_valid_delivery_has_no_signed_timestamp() -> None:
    verification = ADAPTER.verify(signed(GOOD), [NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", None)


@pytest.mark.parametrize(
    "header", [f"{v1(OLD)},{v1(NEW)}", f"{v1(NEW)},{v1(OLD)}", f"v0=ignored,{GOOD}", f"{GOOD},v1=zz", f"v1=zz,{GOOD}"]
)
def test_rotation_on_their_side_any_listed_signature_may_match(header: str) -> None:
    assert ADAPTER.verify(signed(header), [NEW]).key_id == "new"


def test_a_list_of_only_other_secrets_signatures_does_not_match() -> None:
    assert reason_of(signed(f"{v1(OLD)},{v1(OLD)}"), [NEW]) == "no_match"


def test_key_is_the_secret_string_not_its_base64_decoding() -> None:
    vector = VECTORS[0]
    decoded = SigningSecret("decoded", base64.b64decode(vector["secrets"][0]))
    assert reason_of(signed(vector["header"], vector["payload"].encode()), [decoded]) == "no_match"


def test_a_list_without_v1_is_unsupported() -> None:
    assert reason_of(signed("v2=" + GOOD[3:]), [NEW]) == "unsupported_scheme"
    assert reason_of(signed(GOOD.replace("v1=", " v1=")), [NEW]) == "unsupported_scheme"


MALFORMED = {
    "empty": "",
    "empty v1": "v1=",
    "no prefix": GOOD[3:],
    "truncated": GOOD[:-2],
    "over-long": GOOD + "00",
    "uppercase hex": "v1=" + GOOD[3:].upper(),
    "non-hex": GOOD[:-1] + "g",
    "trailing comma": GOOD + ",",
    "semicolons": f"{GOOD};{GOOD}",
    "only bad ones": "v1=zz,v1=00",
    "non-ascii": GOOD[:-1] + "\u00e9",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_headers_are_signature_errors(header: str) -> None:
    assert reason_of(signed(header), [NEW]) == "malformed_signature"


def test_the_signature_list_is_bounded() -> None:
    assert ADAPTER.verify(signed(",".join([v1(OLD)] * 15 + [GOOD])), [NEW]).key_id == "new"
    assert reason_of(signed(",".join([v1(OLD)] * 16 + [GOOD])), [NEW]) == "too_many_signatures"
    assert reason_of(signed(",".join([GOOD] * 5000)), [NEW]) == "too_many_signatures"


def test_there_is_no_handshake() -> None:
    assert ADAPTER.handshake(signed(GOOD), [NEW]) is None


def test_normalize_incident_event() -> None:
    [event] = ADAPTER.normalize(signed(GOOD))
    assert (event.id, event.type, event.subject) == (
        "5ac64822-4adc-4fda-ade0-410becf0de4f",
        "pagerduty.incident.priority_updated",
        "PGR0VU2",
    )
    assert event.time == datetime(2020, 10, 2, 18, 45, 22, 169000, tzinfo=UTC)
    assert orjson.dumps(event.data) == BODY


@pytest.mark.parametrize(
    ("data", "subject"),
    [
        ({"id": "P2LA89X", "type": "incident_note", "incident": {"id": "PGR0VU2"}}, "PGR0VU2"),
        ({"id": "PF9KMXH", "type": "service", "summary": "API Service"}, "PF9KMXH"),
        ({"id": "PX", "type": "custom_field_values", "service": {"id": "PF9KMXH"}}, "PF9KMXH"),
        ({"id": "PX", "type": "something_new"}, "PX"),
        ({"type": "incident"}, None),
        ("not an object", None),
    ],
)
def test_normalize_subject_is_the_incident_or_service(data: Any, subject: str | None) -> None:
    body = orjson.dumps({"event": {**EVENT["event"], "data": data, "occurred_at": "yesterday"}})
    [event] = ADAPTER.normalize(signed(v1(NEW, body), body))
    assert (event.subject, event.time) == (subject, None)


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"event": []}',
        b'{"event": {"event_type": "incident.triggered"}}',
        b'{"event": {"id": "x", "event_type": ""}}',
    ],
)
def test_normalize_needs_event_id_and_type(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(signed(v1(NEW, body), body))


@pytest.mark.parametrize("body", [b"", b"[]", b'{"event": NaN}', b"\xff", b'{"a":[' * 2000, b"{} trailing"])
def test_hostile_json_is_a_payload_error_after_valid_signature(body: bytes) -> None:
    request = signed(v1(NEW, body), body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    with pytest.raises(PayloadError):
        ADAPTER.normalize(request)


def test_sample_is_an_incident_triggered_event_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 200 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.time) == ("pagerduty.incident.triggered", datetime.fromtimestamp(NOW, UTC))
    assert event.subject == orjson.loads(sample.body)["event"]["data"]["id"]
    assert event.id != ADAPTER.normalize(inbound({}, ADAPTER.sample(NOW).body))[0].id
