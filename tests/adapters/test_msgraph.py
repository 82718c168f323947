"""Microsoft Graph adapter: clientState checks, the validation handshake, batches, round trips.

The rules that apply to a scheme that signs nothing (round trips, rotation, every flipped bit of a
clientState, a missing clientState, dedupe keys) are proven for `msgraph` by test_conformance.py; the body
and repeated-header rules are excluded there, with the reason."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.msgraph import MicrosoftGraphAdapter
from tests.adapters.harness import refusal_reason, vectors

VECTORS = {v["kind"]: v for v in vectors("msgraph")}
NOW = 1_700_000_000.0
ADAPTER = MicrosoftGraphAdapter.configure()
OLD = SigningSecret("old", b"old-client-state-5f1c")
NEW = SigningSecret("new", b"new-client-state-9b2e")
URL = "https://hub.test/hooks/acme/graph"
TOKEN = "Validation: Testing client application reachability for subscription Request-Id: 11e0b5f2"


def item(state: str = "new-client-state-9b2e", change: str = "updated", **extra: Any) -> dict[str, Any]:
    return {
        "id": "lsgTZMr9KwAAA",
        "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
        "subscriptionExpirationDateTime": "2023-11-16T22:13:20Z",
        "clientState": state,
        "changeType": change,
        "resource": "Users/5b5f0d65/Messages/AAMkAGUw",
        "tenantId": "84bd8158-6d4d-4958-8b9f-9d6445542f95",
        **extra,
    }


def collection(*items: dict[str, Any]) -> bytes:
    return orjson.dumps({"value": list(items) or [item()]})


def inbound(
    body: bytes = b"", method: str = "POST", query: str = "", headers: Iterable[tuple[str, str]] = ()
) -> InboundRequest:
    return InboundRequest(
        method=method, url=URL + (f"?{query}" if query else ""), headers=list(headers), body=body, received_at=NOW
    )


def validation(token: str = TOKEN, method: str = "POST", body: bytes = b"", extra: str = "") -> InboundRequest:
    return inbound(body, method, f"validationToken={quote_plus(token)}{extra}")


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


def test_documented_notification_verifies_normalizes_and_is_what_sign_produces() -> None:
    vector = VECTORS["notification"]
    secret, body = SigningSecret("docs", vector["secret"].encode()), vector["payload"].encode()
    verification = ADAPTER.verify(inbound(body), [NEW, secret])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("client-state", "docs", None)
    events = ADAPTER.normalize(inbound(body))
    assert [{"type": e.type, "id": e.id, "subject": e.subject} for e in events] == vector["expected"]
    blank = orjson.dumps({"value": [{**json.loads(body)["value"][0], "clientState": ""}]})
    assert orjson.loads(ADAPTER.sign(TestRequest({}, blank), secret, NOW).body) == json.loads(body)


def test_documented_validation_request_is_answered_byte_exactly() -> None:
    vector = VECTORS["validation"]
    request = inbound(b"", vector["method"], vector["query"], [("Content-Type", "text/plain; charset=utf-8")])
    verification = ADAPTER.verify(request, [NEW])
    assert (verification.scheme, verification.key_id) == ("msgraph-validation", None)
    reply = ADAPTER.handshake(request, [NEW])
    assert reply is not None
    assert (reply.status, reply.content_type, reply.body) == (200, "text/plain", vector["reply"].encode())


@pytest.mark.parametrize("token", [TOKEN, "a+b&c=d%e/é€", "<script>alert(1)</script>"])
@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("encode", [quote_plus, partial(quote, safe="")], ids=["plus for space", "percent only"])
def test_validation_tokens_are_url_decoded_exactly(token: str, method: str, encode: Callable[[str], str]) -> None:
    request = inbound(b"", method, f"tenant=acme&validationToken={encode(token)}")
    assert ADAPTER.verify(request, []).scheme == "msgraph-validation"
    reply = ADAPTER.handshake(request, [])
    assert reply is not None
    assert (reply.status, reply.content_type, reply.body) == (200, "text/plain", token.encode())


VALIDATION_SHAPES = {
    "two tokens": validation(extra="&validationToken=again"),
    "a body": validation(body=collection()),
    "empty token": inbound(b"", "POST", "validationToken="),
    "a newline in the token": inbound(b"", "POST", "validationToken=a%0Ab"),
    "not UTF-8": inbound(b"", "POST", "validationToken=%FF%FE"),
    "too long": validation("x" * 2049),
    "a PUT": validation(method="PUT"),
    "thousands of fields": inbound(b"", "POST", "validationToken=a" + "&x=1" * 5000),
}


@pytest.mark.parametrize("request_", VALIDATION_SHAPES.values(), ids=VALIDATION_SHAPES.keys())
def test_only_the_exact_validation_shape_passes_unsigned(request_: InboundRequest) -> None:
    assert reason_of(request_, [NEW]) == "malformed_signature"


def test_nothing_but_a_validation_request_is_a_handshake() -> None:
    assert ADAPTER.handshake(inbound(collection()), [NEW]) is None
    assert ADAPTER.handshake(inbound(collection(), query="tenant=acme&validation=1"), [NEW]) is None


@pytest.mark.parametrize(
    ("states", "key_id"), [(["old"], "old"), (["new", "new"], "new"), (["new", "old", "new"], "new,old")]
)
def test_every_notification_must_carry_a_current_or_previous_client_state(states: list[str], key_id: str) -> None:
    secrets = {"old": OLD, "new": NEW}
    body = collection(*(item(secrets[state].value.decode()) for state in states))
    assert ADAPTER.verify(inbound(body), [OLD, NEW]).key_id == key_id


REFUSED = {
    "one wrong client state": (collection(item(), item("new-client-state-9b2f")), "no_match"),
    "a longer client state": (collection(item("new-client-state-9b2e ")), "no_match"),
    "an empty client state": (collection(item("")), "no_match"),
    "no client state": (
        orjson.dumps({"value": [item(), {k: v for k, v in item().items() if k != "clientState"}]}),
        "missing_header",
    ),
    "a numeric client state": (collection(item(7)), "missing_header"),  # type: ignore[arg-type]
    "an empty batch": (b'{"value": []}', "malformed_signature"),
    "no value": (b'{"values": [{}]}', "malformed_signature"),
    "an item that is no object": (b'{"value": ["x"]}', "malformed_signature"),
    "not JSON": (b"clientState=new-client-state-9b2e", "malformed_signature"),
    "an empty body": (b"", "malformed_signature"),
}


@pytest.mark.parametrize(("body", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_notifications(body: bytes, reason: str) -> None:
    assert reason_of(inbound(body), [NEW]) == reason


def test_a_get_without_validation_token_is_refused() -> None:
    assert reason_of(inbound(b"", "GET", "tenant=acme"), [NEW]) == "missing_header"


def test_client_state_authenticates_the_sender_not_the_body() -> None:
    assert ADAPTER.verify(inbound(collection(item(change="deleted"))), [NEW]).key_id == "new"


@pytest.mark.parametrize("value", [b"", b"x" * 256, b"\xff\xfe"])
def test_client_state_secrets_are_1_to_255_characters_of_text(value: bytes) -> None:
    with pytest.raises(ValueError, match="the-key"):
        ADAPTER.check_secret(SigningSecret("the-key", value))
    ADAPTER.check_secret(SigningSecret("ok", "é".encode() * 255))


def test_normalize_gives_one_event_per_notification() -> None:
    lifecycle = {k: v for k, v in item(lifecycleEvent="reauthorizationRequired").items() if k != "changeType"}
    body = collection(item(change="created", id="n1"), item(id="n2"), lifecycle)
    events = ADAPTER.normalize(inbound(body))
    assert [e.type for e in events] == [
        "msgraph.created",
        "msgraph.updated",
        "msgraph.lifecycle.reauthorizationRequired",
    ]
    assert [e.id.split(":", 1)[1] for e in events] == ["n1", "n2", "lsgTZMr9KwAAA"]
    assert {e.subject for e in events} == {"Users/5b5f0d65/Messages/AAMkAGUw"}
    assert events[0].data == item(change="created", id="n1")
    assert all(e.time is None for e in events)


def test_notifications_without_an_id_get_a_stable_content_id() -> None:
    first, second = ({k: v for k, v in item(etag=tag).items() if k != "id"} for tag in ("a", "b"))
    [one, two] = ADAPTER.normalize(inbound(collection(first, second)))
    assert one.id.startswith("7f105c7d-2dc5-4530-97cd-4e7ae6534c07:updated:Users/5b5f0d65/Messages/AAMkAGUw:")
    assert one.id != two.id
    [again] = ADAPTER.normalize(inbound(orjson.dumps({"value": [dict(reversed(first.items()))]})))
    assert again.id == one.id


@pytest.mark.parametrize("body", [collection({"clientState": "x", "resource": "r"}), b"[]", b'{"value": {}}', b"\xff"])
def test_normalize_refuses_what_is_not_a_notification(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound(body))


def test_sample_is_a_realistic_batch_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 600 <= len(sample.body) <= 3000
    signed = ADAPTER.sign(sample, NEW, NOW)
    assert signed.headers == sample.headers
    request = inbound(signed.body, headers=signed.headers.items())
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    assert [e.type for e in ADAPTER.normalize(request)] == ["msgraph.created", "msgraph.updated"]
    with pytest.raises(SignatureError):
        ADAPTER.verify(inbound(sample.body), [NEW])


def test_sign_leaves_other_bodies_alone() -> None:
    for body in (b"not json", b"[1]", b'{"value": 3}'):
        assert ADAPTER.sign(TestRequest({}, body), NEW, NOW).body == body


@settings(max_examples=80)
@given(
    state=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=255),
    index=st.integers(0),
    bit=st.integers(0, 7),
)
def test_round_trip_and_a_flipped_bit_is_rejected_exactly_when_it_touches_a_client_state(
    state: str, index: int, bit: int
) -> None:
    secret = SigningSecret("k", state.encode())
    body = ADAPTER.sign(ADAPTER.sample(NOW), secret, NOW).body
    assert ADAPTER.verify(inbound(body), [secret]).key_id == "k"
    position = index % len(body)
    tampered = body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1 :]
    try:
        items = orjson.loads(tampered)["value"]
        intact = all(isinstance(i, dict) and i.get("clientState") == state for i in items) and bool(items)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        intact = False
    if intact:
        assert ADAPTER.verify(inbound(tampered), [secret]).key_id == "k"
    else:
        with pytest.raises(SignatureError):
            ADAPTER.verify(inbound(tampered), [secret])
