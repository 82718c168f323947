"""Google Pub/Sub push adapter: google-auth-checked vectors, OIDC token checks, sender trust, normalization.

The rules every provider keeps (round trips, every flipped bit of the token, missing and repeated
Authorization, a token reused until it expires and no longer) are proven for `google-pubsub` by
test_conformance.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from adapters.base import InboundRequest, SigningSecret, TestRequest
from adapters.errors import PayloadError, ReplayWindowError
from adapters.keyhosts import key_hosts_allowed
from adapters.webhooks.google_pubsub import GOOGLE_JWKS_URL, GooglePubSubAdapter, key_id_of
from tests.adapters.harness import assert_no_secret_or_signature, refusal_reason, vector_document

DOC = vector_document("google-pubsub")
AUDIENCE, SERVICE_ACCOUNT = DOC["audience"], DOC["serviceAccount"]
JWKS = json.dumps(DOC["jwks"]).encode()
ADAPTER = GooglePubSubAdapter.configure({"audience": AUDIENCE})
KEYS = [serialization.load_pem_private_key(pem.encode(), None) for pem in DOC["privateKeys"]]
SIGNER = SigningSecret("signer", DOC["privateKeys"][0].encode())
PUSHER = SigningSecret("pusher", SERVICE_ACCOUNT.encode())
OTHER_PUSHER = SigningSecret("other", b"other-push@example-project.iam.gserviceaccount.com")
NOW = 1_716_300_000
STRANGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def push_body(data: bytes | None = b'{"order":"A-1001"}', **attributes: str) -> bytes:
    message: dict[str, Any] = {
        "attributes": attributes,
        "messageId": "2070443601311540",
        "message_id": "2070443601311540",
    }
    message |= {"publishTime": "2024-05-21T14:00:00.123Z", "publish_time": "2024-05-21T14:00:00.123Z"}
    if data is not None:
        message["data"] = base64.b64encode(data).decode()
    return orjson.dumps({"message": message, "subscription": "projects/example-project/subscriptions/hub-push"})


def token(key: Any = None, kid: str | None = None, **changes: Any) -> str:
    """A token as Pub/Sub sends it, signed with `key` (default: the JWKS's first key), with changed claims."""
    key = key or KEYS[0]
    claims = {"aud": AUDIENCE, "azp": "1137", "email": SERVICE_ACCOUNT, "sub": "1137", "email_verified": True}
    claims |= {"exp": NOW + 3600, "iat": NOW, "iss": "https://accounts.google.com"} | changes
    header = {"kid": kid or key_id_of(key.public_key())}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256", headers=header)


def inbound(authorization: str | None, body: bytes = b"", *, now: float = NOW, keys: Any = None) -> InboundRequest:
    headers = {"Content-Type": "application/json"} | ({"Authorization": authorization} if authorization else {})
    return InboundRequest(
        method="POST",
        url="https://hooks.example.com/hooks/acme/pubsub",
        headers=headers,
        body=body or push_body(),
        received_at=now,
        keys={GOOGLE_JWKS_URL: JWKS} if keys is None else keys,
    )


def reason_of(request: InboundRequest, secrets: list[SigningSecret] | None = None) -> str:
    return refusal_reason(ADAPTER, request, secrets or [PUSHER])


def window_reason(request: InboundRequest) -> str:
    with pytest.raises(ReplayWindowError) as caught:
        ADAPTER.verify(request, [PUSHER])
    assert_no_secret_or_signature(str(caught.value), request, [PUSHER])
    return caught.value.reason


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["description"])
def test_vectors_checked_by_google_auth(vector: dict[str, Any]) -> None:
    assert vector["googleAuth"] == ("accepted" if vector["expect"] == "accepted" else "rejected")
    request = inbound(f"Bearer {vector['token']}", now=vector["receivedAt"])
    if vector["expect"] == "accepted":
        verification = ADAPTER.verify(request, [OTHER_PUSHER, PUSHER])
        assert (verification.scheme, verification.key_id, verification.signed_at) == ("oidc-rs256", "pusher", None)
    elif vector["expect"].startswith("timestamp_"):
        assert window_reason(request) == vector["expect"]
    else:
        assert reason_of(request) == vector["expect"]


def test_sign_produces_the_vector_token_byte_for_byte() -> None:
    vector = DOC["vectors"][0]
    signed = ADAPTER.sign(TestRequest(headers={}, body=push_body()), SIGNER, vector["receivedAt"])
    assert signed.headers["Authorization"] == f"Bearer {vector['token']}"


def test_valid_push_names_the_service_account_and_both_jwks_keys_work() -> None:
    for key in KEYS:
        assert ADAPTER.verify(inbound(f"Bearer {token(key)}"), [OTHER_PUSHER, PUSHER]).key_id == "pusher"
    other = token(email=OTHER_PUSHER.value.decode())
    assert ADAPTER.verify(inbound(f"Bearer {other}"), [OTHER_PUSHER, PUSHER]).key_id == "other"
    assert ADAPTER.verify(inbound(f"bearer {token(email=SERVICE_ACCOUNT.upper())}"), [PUSHER]).key_id == "pusher"


CLAIMS: dict[str, tuple[dict[str, Any], str]] = {
    "other audience": ({"aud": "https://hooks.example.com/hooks/acme/other"}, "wrong_audience"),
    "audience list": ({"aud": [AUDIENCE]}, "wrong_audience"),
    "no audience": ({"aud": None}, "wrong_audience"),
    "other issuer": ({"iss": "https://evil.example.com"}, "wrong_issuer"),
    "no issuer": ({"iss": None}, "wrong_issuer"),
    "other email": ({"email": "attacker@evil-project.iam.gserviceaccount.com"}, "untrusted_sender"),
    "email not verified": ({"email_verified": False}, "untrusted_sender"),
    "email verified as text": ({"email_verified": "true"}, "untrusted_sender"),
    "no email": ({"email": None}, "untrusted_sender"),
    "fractional exp": ({"exp": NOW + 3600.5}, "malformed_signature"),
    "no iat": ({"iat": None}, "malformed_signature"),
}


@pytest.mark.parametrize(("changes", "reason"), CLAIMS.values(), ids=CLAIMS.keys())
def test_claims_are_checked(changes: dict[str, Any], reason: str) -> None:
    assert reason_of(inbound(f"Bearer {token(**changes)}")) == reason


def test_keys_and_signatures() -> None:
    assert reason_of(inbound(f"Bearer {token(STRANGER)}")) == "unknown_key"
    assert reason_of(inbound(f"Bearer {token(STRANGER, kid=key_id_of(KEYS[0].public_key()))}")) == "no_match"
    header, _, signature = token().split(".")
    forged_claims = token(email="attacker@evil-project.iam.gserviceaccount.com").split(".")[1]
    assert reason_of(inbound(f"Bearer {header}.{forged_claims}.{signature}")) == "no_match"
    no_kid = jwt.encode({"aud": AUDIENCE}, KEYS[0], algorithm="RS256")
    assert reason_of(inbound(f"Bearer {no_kid}")) == "unsupported_scheme"
    hs256 = jwt.encode({"aud": AUDIENCE}, "k" * 32, algorithm="HS256", headers={"kid": key_id_of(KEYS[0].public_key())})
    assert reason_of(inbound(f"Bearer {hs256}")) == "unsupported_scheme"
    unsigned = jwt.encode({"aud": AUDIENCE}, None, algorithm="none")
    assert reason_of(inbound(f"Bearer {unsigned}AA")) == "unsupported_scheme"


def test_jwks_problems() -> None:
    good = f"Bearer {token()}"
    assert reason_of(inbound(good, keys={})) == "key_unavailable"
    for jwks in [b"", b"not json", b"[]", b'{"keys": []}', b'{"keys": [{"kty": "RSA", "n": "!"}]}', b"\xff"]:
        assert reason_of(inbound(good, keys={GOOGLE_JWKS_URL: jwks})) == "malformed_key"
    ec_only = {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-256",
                "kid": "k",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
            }
        ]
    }
    assert reason_of(inbound(good, keys={GOOGLE_JWKS_URL: json.dumps(ec_only).encode()})) == "unknown_key"


MALFORMED = {
    "no scheme": token(),
    "basic": "Basic dXNlcjpwYXNz",
    "two spaces": f"Bearer  {token()}",
    "two parts": "Bearer " + ".".join(token().split(".")[:2]),
    "padding": f"Bearer {token()}=",
    "non-canonical last char": f"Bearer {token()[:-1]}{chr(ord(token()[-1]) ^ 1)}",
    "bad header json": "Bearer " + base64.urlsafe_b64encode(b"{x").rstrip(b"=").decode() + ".e30.c2ln",
    "huge": "Bearer " + "a" * 20_000 + ".e30.c2ln",
}


@pytest.mark.parametrize("authorization", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_authorization_headers(authorization: str) -> None:
    assert reason_of(inbound(authorization)) == "malformed_signature"


def test_no_key_is_fetched_for_a_request_without_a_token() -> None:
    assert ADAPTER.key_urls(inbound(None)) == []


def test_key_urls_name_the_configured_jwks() -> None:
    assert ADAPTER.key_urls(inbound(f"Bearer {token()}")) == [GOOGLE_JWKS_URL]
    with key_hosts_allowed(["127.0.0.1"]):  # the operator's setting: a loopback JWKS for tests
        local = GooglePubSubAdapter.configure({"audience": AUDIENCE, "jwksUrl": "http://127.0.0.1:9000/certs"})
    assert local.key_urls(inbound(f"Bearer {token()}")) == ["http://127.0.0.1:9000/certs"]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"audience": ""},
        {"audience": "a", "jwksUrl": "ftp://x/certs"},
        {"audience": "a", "jwksUrl": "http://example.com/certs"},
        {"audience": "a", "jwksUrl": "https://u:p@x/certs"},
        {"audience": "a", "x": 1},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GooglePubSubAdapter.configure(options)


def test_secrets_are_service_account_emails() -> None:
    ADAPTER.check_secret(PUSHER)
    for value in [b"whsec_abc", b"not an email", b"a@b", b""]:
        with pytest.raises(ValueError, match="email"):
            ADAPTER.check_secret(SigningSecret("k", value))
    with pytest.raises(ValueError, match="private key"):
        ADAPTER.sign(ADAPTER.sample(NOW), PUSHER, NOW)


def test_no_handshake() -> None:
    assert ADAPTER.handshake(inbound(f"Bearer {token()}"), [PUSHER]) is None


def test_normalize_json_data_with_event_type() -> None:
    [event] = ADAPTER.normalize(inbound(None, push_body(eventType="OBJECT_FINALIZE", bucketId="uploads")))
    assert (event.id, event.type) == ("2070443601311540", "google-pubsub.OBJECT_FINALIZE")
    assert event.subject == "projects/example-project/subscriptions/hub-push"
    assert event.time == datetime(2024, 5, 21, 14, 0, 0, 123000, tzinfo=UTC)
    assert event.data == {
        "subscription": "projects/example-project/subscriptions/hub-push",
        "messageId": "2070443601311540",
        "publishTime": "2024-05-21T14:00:00.123Z",
        "attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads"},
        "data": {"order": "A-1001"},
        "dataEncoding": "json",
    }


@pytest.mark.parametrize(
    ("raw", "encoding", "decoded"),
    [(b"hello", "text", "hello"), (b"\xff\xfe", "base64", "//4="), (None, "none", None), (b"42", "json", 42)],
)
def test_normalize_data_encodings(raw: bytes | None, encoding: str, decoded: Any) -> None:
    [event] = ADAPTER.normalize(inbound(None, push_body(raw)))
    assert (event.type, event.data["dataEncoding"], event.data["data"]) == ("google-pubsub.message", encoding, decoded)


def test_normalize_snake_case_ids_ordering_key_and_delivery_attempt() -> None:
    body = {
        "message": {"message_id": "7", "publish_time": "2024-05-21T14:00:00Z", "orderingKey": "k"},
        "subscription": "projects/p/subscriptions/s",
        "deliveryAttempt": 3,
    }
    [event] = ADAPTER.normalize(inbound(None, orjson.dumps(body)))
    assert (event.id, event.data["orderingKey"], event.data["deliveryAttempt"]) == ("7", "k", 3)
    assert event.time == datetime(2024, 5, 21, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": "x"},
        {"message": {}},
        {"message": {"messageId": 7}},
        {"message": {"messageId": "1", "data": "!!"}},
        {"message": {"messageId": "1", "attributes": {"a": 1}}},
    ],
)
def test_normalize_refuses_what_is_not_a_wrapped_push(body: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        ADAPTER.normalize(inbound(None, orjson.dumps(body)))


def test_the_body_is_not_covered_by_the_token() -> None:
    authorization = f"Bearer {token()}"
    assert ADAPTER.verify(inbound(authorization, push_body(b"other")), [PUSHER]).key_id == "pusher"


def test_sample_round_trips() -> None:
    sample = ADAPTER.sample(NOW)
    request = inbound(ADAPTER.sign(sample, SIGNER, NOW).headers["Authorization"], sample.body)
    assert ADAPTER.verify(request, [SigningSecret("sa", b"pubsub-push@example-project.iam.gserviceaccount.com")])
    [event] = ADAPTER.normalize(request)
    assert (event.type, event.data["dataEncoding"]) == ("google-pubsub.OBJECT_FINALIZE", "json")
