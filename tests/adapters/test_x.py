"""X Account Activity adapter: the CRC, POST signatures, one event per array element.

The rules every provider keeps (for POSTs) are proven for `x` by test_conformance.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import PayloadError, SignatureError
from adapters.webhooks.x import XAdapter
from tests.adapters.harness import refusal_reason, vectors

VECTORS = {v["kind"]: v for v in vectors("x")}
NOW = 1_700_000_000.0
ADAPTER = XAdapter.configure()
OLD = SigningSecret("old", b"oldConsumerSecret0123456789abcdefghijklmnopqrstuv")
NEW = SigningSecret("new", b"newConsumerSecret0123456789abcdefghijklmnopqrstuv")
URL = "https://hub.test/hooks/acme/x"
TWEET: dict[str, Any] = {
    "created_at": "Wed Oct 10 20:19:24 +0000 2018",
    "id": 1050118621198921728,
    "id_str": "1050118621198921728",
    "text": "@acme_support where is my order?",
    "user": {"id_str": "6253282", "screen_name": "ada_l"},
}
BODY = orjson.dumps({"for_user_id": "2244994945", "tweet_create_events": [TWEET]})


def b64_hmac(secret: SigningSecret, message: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.value, message, hashlib.sha256).digest()).decode()


GOOD = b64_hmac(NEW, BODY)


def inbound(
    headers: dict[str, str] | Iterable[tuple[str, str]] = (), body: bytes = BODY, method: str = "POST", query: str = ""
) -> InboundRequest:
    url = URL + (f"?{query}" if query else "")
    return InboundRequest(method=method, url=url, headers=headers, body=body, received_at=NOW)


def delivery(signature: str = GOOD, body: bytes = BODY) -> InboundRequest:
    return inbound({"x-twitter-webhooks-signature": signature}, body)


def crc(token: str, body: bytes = b"") -> InboundRequest:
    return inbound({}, body, "GET", "crc_token=" + quote(token, safe=""))


def reason_of(request: InboundRequest, secrets: list[SigningSecret]) -> str:
    return refusal_reason(ADAPTER, request, secrets)


def test_crc_vector_is_answered_byte_exactly() -> None:
    vector = VECTORS["crc"]
    secret, request = SigningSecret("app", vector["secret"].encode()), crc(vector["crc_token"])
    assert ADAPTER.verify(request, [secret]) == Verification(scheme="x-crc", key_id=None)
    reply = ADAPTER.handshake(request, [secret])
    assert reply is not None
    expected = b'{"response_token":"' + vector["response_token"].encode() + b'"}'
    assert (reply.status, reply.content_type, reply.body) == (200, "application/json", expected)


def test_event_vector_verifies_and_is_what_sign_produces() -> None:
    vector = VECTORS["event"]
    secret, body = SigningSecret("app", vector["secret"].encode()), vector["payload"].encode()
    assert ADAPTER.verify(delivery(vector["signature"], body), [secret]).key_id == "app"
    assert (
        ADAPTER.sign(TestRequest({}, body), secret, NOW).headers["x-twitter-webhooks-signature"] == vector["signature"]
    )
    [event] = ADAPTER.normalize(delivery(vector["signature"], body))
    assert (event.type, event.id) == (
        "x.favorite_events",
        "2244994945:favorite_events:a7ba59eab0bfcba386f7acedac279542",
    )


def test_the_crc_is_answered_with_the_first_listed_secret() -> None:
    reply = ADAPTER.handshake(crc("challenge-1"), [NEW, OLD])
    assert reply is not None
    assert orjson.loads(reply.body) == {"response_token": b64_hmac(NEW, b"challenge-1")}
    assert ADAPTER.handshake(crc("challenge-1"), []) is None


CRC_SHAPES = {
    "two tokens": (inbound({}, b"", "GET", "crc_token=a&crc_token=b"), "malformed_signature"),
    "a body": (crc("abc", b"{}"), "malformed_signature"),
    "an empty token": (inbound({}, b"", "GET", "crc_token="), "malformed_signature"),
    "a newline": (crc("a\nb"), "malformed_signature"),
    "not UTF-8": (inbound({}, b"", "GET", "crc_token=%FF"), "malformed_signature"),
    "too long": (crc("a" * 1025), "malformed_signature"),
    "a JSON body as token": (crc(BODY.decode()), "malformed_signature"),
    "any brace": (crc("x{"), "malformed_signature"),
    "no token": (inbound({}, b"", "GET", "nonce=1"), "missing_header"),
}


@pytest.mark.parametrize(("request_", "reason"), CRC_SHAPES.values(), ids=CRC_SHAPES.keys())
def test_only_the_exact_crc_shape_passes_unsigned(request_: InboundRequest, reason: str) -> None:
    assert reason_of(request_, [NEW]) == reason


def test_the_crc_cannot_be_used_to_sign_an_event() -> None:
    """The CRC answer for token T is the POST signature of body T: a JSON object can never be a token."""
    with pytest.raises(SignatureError):
        ADAPTER.handshake(crc(BODY.decode()), [NEW])
    assert b64_hmac(NEW, BODY) == GOOD  # what the oracle would have given


def test_verification_reports_the_scheme_and_the_signature_it_matched() -> None:
    verification = ADAPTER.verify(delivery(), [OLD, NEW])
    assert (verification.scheme, verification.key_id, verification.signed_at) == ("hmac-sha256", "new", None)
    assert verification.signature == base64.b64decode(GOOD[7:])


def test_a_post_needs_its_signature_even_with_a_crc_token() -> None:
    assert reason_of(inbound({}, BODY, "POST", "crc_token=abc"), [NEW]) == "missing_header"
    assert ADAPTER.handshake(delivery(), [NEW]) is None


MALFORMED = {
    "empty": "",
    "prefix only": "sha256=",
    "no prefix": GOOD[7:],
    "hex instead of base64": "sha256=" + base64.b64decode(GOOD[7:]).hex(),
    "unpadded": GOOD.rstrip("="),
    "url-safe alphabet": "sha256=" + base64.urlsafe_b64encode(b"\xfb" * 32).decode(),
    "truncated": GOOD[:-4],
    "over-long": "sha256=" + base64.b64encode(b"x" * 33).decode(),
    "non-ascii": GOOD[:-2] + "\u00e9=",
}


@pytest.mark.parametrize("header", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_signatures_are_signature_errors(header: str) -> None:
    assert reason_of(delivery(header), [NEW]) == "malformed_signature"


def test_normalize_one_event_per_element() -> None:
    second = {**TWEET, "id": 1050118621198921729, "id_str": "1050118621198921729"}
    body = orjson.dumps({"for_user_id": "2244994945", "tweet_create_events": [TWEET, second]})
    events = ADAPTER.normalize(delivery(body=body))
    assert [(e.type, e.id, e.subject) for e in events] == [
        ("x.tweet_create_events", "2244994945:tweet_create_events:1050118621198921728", "2244994945"),
        ("x.tweet_create_events", "2244994945:tweet_create_events:1050118621198921729", "2244994945"),
    ]
    assert events[0].time == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
    assert events[0].data == {"for_user_id": "2244994945", "kind": "tweet_create_events", "event": TWEET}


def test_normalize_other_kinds() -> None:
    dm = {"type": "message_create", "id": "954491830116155396", "created_timestamp": "1516403560557"}
    body = {
        "for_user_id": "4337869213",
        "direct_message_events": [dm],
        "users": {"4337869213": {"screen_name": "acme"}},
        "follow_events": [{"type": "follow", "created_timestamp": "1517588749178", "target": {"id": "1"}}],
        "tweet_delete_events": [
            {"status": {"id": "1045405559317569537", "user_id": "9"}, "timestamp_ms": "1432228155593"}
        ],
        "user_event": {"revoke": {"date_time": "2018-05-24T09:48:12+00:00", "source": {"user_id": "9"}}},
    }
    events = {e.type: e for e in ADAPTER.normalize(delivery(body=orjson.dumps(body)))}
    assert set(events) == {"x.direct_message_events", "x.follow_events", "x.tweet_delete_events", "x.user_event"}
    direct = events["x.direct_message_events"]
    assert direct.id == "4337869213:direct_message_events:954491830116155396"
    assert direct.data["users"] == body["users"]
    assert direct.time == datetime(2018, 1, 19, 23, 12, 40, 557000, tzinfo=UTC)
    assert events["x.follow_events"].id.startswith("4337869213:follow_events:sha256:")
    assert events["x.tweet_delete_events"].id.endswith(":1045405559317569537")
    assert (events["x.user_event"].time, events["x.user_event"].subject) == (None, "4337869213")


@pytest.mark.parametrize(
    "body",
    [b'{"for_user_id": "1"}', b'{"tweet_create_events": ["x"]}', b"[]", b"", b'{"a": NaN}', b'{"users": {}}'],
)
def test_normalize_refuses_bodies_without_events(body: bytes) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(delivery(body=body))


def test_sample_is_a_realistic_mention_that_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    assert 400 <= len(sample.body) <= 2000
    request = inbound(ADAPTER.sign(sample, NEW, NOW).headers, sample.body)
    assert ADAPTER.verify(request, [NEW]).key_id == "new"
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.subject, event.time) == (
        "x.tweet_create_events",
        "2244994945",
        datetime.fromtimestamp(NOW, UTC),
    )
