"""The schemes for senders that cannot sign: HTTP basic, a shared token, a signed ingress URL."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret
from adapters.errors import SignatureError
from adapters.webhooks.basic_auth import BasicAuthAdapter
from adapters.webhooks.token import TokenAdapter
from adapters.webhooks.url_token import UrlTokenAdapter, issue_token
from tests.adapters.refusals import refusal_reason

NOW = 1_700_000_000.0
BODY = orjson.dumps({"id": "evt_1", "kind": "order.paid"})
OLD, NEW = SigningSecret("old", b"alice:old-password"), SigningSecret("new", b"alice:new-password")
URL = "https://hub.example/hooks/acme/orders"


def inbound(headers: dict[str, str], url: str = URL, query: dict[str, str] | None = None) -> InboundRequest:
    return InboundRequest(method="POST", url=url, headers=headers, body=BODY, received_at=NOW, query=query or {})


def basic(credential: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credential).decode()}


class TestBasic:
    adapter = BasicAuthAdapter.configure({"idPath": "id", "typePath": "kind", "typePrefix": "shop"})

    def test_every_listed_credential_is_accepted(self) -> None:
        assert self.adapter.verify(inbound(basic(OLD.value)), [OLD, NEW]).key_id == "old"
        assert self.adapter.verify(inbound(basic(NEW.value)), [OLD, NEW]).key_id == "new"
        signed = self.adapter.sign(self.adapter.sample(NOW), NEW, NOW)
        assert self.adapter.verify(inbound(signed.headers), [NEW]).scheme == "http-basic"

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing_header"),
            ({"Authorization": "Bearer abc"}, "malformed_signature"),
            ({"Authorization": "Basic !!not-base64!!"}, "malformed_signature"),
            (basic(b"alice:wrong"), "no_match"),
            (basic(b"alice:new-password "), "no_match"),
        ],
    )
    def test_refusals(self, headers: dict[str, str], reason: str) -> None:
        assert refusal_reason(self.adapter, inbound(headers), [NEW]) == reason

    def test_a_secret_must_be_user_colon_password(self) -> None:
        with pytest.raises(ValueError, match="user:password"):
            self.adapter.check_secret(SigningSecret("k", b"just-a-password"))

    def test_normalize_takes_id_and_type_where_the_options_say(self) -> None:
        (event,) = self.adapter.normalize(inbound(basic(NEW.value)))
        assert (event.id, event.type) == ("evt_1", "shop.order.paid")


class TestToken:
    def test_bearer_by_default_and_any_header_by_option(self) -> None:
        bearer = TokenAdapter.configure()
        secret = SigningSecret("t", b"s3cr3t-token")
        assert bearer.verify(inbound({"Authorization": "Bearer s3cr3t-token"}), [secret]).key_id == "t"
        custom = TokenAdapter.configure({"header": "X-Webhook-Token", "prefix": ""})
        assert custom.verify(inbound({"X-Webhook-Token": "s3cr3t-token"}), [secret]).scheme == "token"
        signed = custom.sign(custom.sample(NOW), secret, NOW)
        assert custom.verify(inbound(signed.headers), [secret]).key_id == "t"

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing_header"),
            ({"Authorization": "s3cr3t-token"}, "malformed_signature"),
            ({"Authorization": "Bearer "}, "malformed_signature"),
            ({"Authorization": "Bearer s3cr3t-tokem"}, "no_match"),
            ({"Authorization": "Bearer s3cr3t-token-longer"}, "no_match"),
        ],
    )
    def test_refusals(self, headers: dict[str, str], reason: str) -> None:
        assert (
            refusal_reason(TokenAdapter.configure(), inbound(headers), [SigningSecret("t", b"s3cr3t-token")]) == reason
        )


class TestUrlToken:
    adapter = UrlTokenAdapter.configure()
    key = SigningSecret("hub-signing-key", b"hub signing key, version 1")

    def test_a_token_admits_its_own_connector_only(self) -> None:
        token = issue_token(self.key.value, "acme", "orders")
        assert self.adapter.verify(inbound({}, query={"token": token}), [self.key]).key_id == "hub-signing-key"
        other = inbound({}, url="https://hub.example/hooks/acme/payments", query={"token": token})
        assert refusal_reason(self.adapter, other, [self.key]) == "no_match"

    def test_rotating_the_signing_key_revokes_every_token(self) -> None:
        token = issue_token(self.key.value, "acme", "orders")
        rotated = SigningSecret("hub-signing-key-2", b"hub signing key, version 2")
        assert refusal_reason(self.adapter, inbound({}, query={"token": token}), [rotated]) == "no_match"
        # while both keys are listed (a rotation in progress), the old URLs still work
        assert self.adapter.verify(inbound({}, query={"token": token}), [rotated, self.key]).key_id == "hub-signing-key"

    @pytest.mark.parametrize(
        ("query", "reason"),
        [({}, "missing_header"), ({"token": "x" * 600}, "malformed_signature"), ({"token": "garbage.sig"}, "no_match")],
    )
    def test_refusals(self, query: dict[str, str], reason: str) -> None:
        assert refusal_reason(self.adapter, inbound({}, query=query), [self.key]) == reason

    def test_a_tampered_token_is_refused(self) -> None:
        token = issue_token(self.key.value, "acme", "orders")
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert refusal_reason(self.adapter, inbound({}, query={"token": flipped}), [self.key]) == "no_match"


VECTORS = Path(__file__).parent.parent / "vectors"


@pytest.mark.parametrize(
    ("adapter", "name"), [(BasicAuthAdapter.configure(), "basic"), (TokenAdapter.configure(), "token")]
)
def test_published_credentials_verify_and_are_what_sign_produces(adapter: Any, name: str) -> None:
    (vector,) = json.loads((VECTORS / f"{name}.json").read_text())["vectors"]
    secret = SigningSecret("published", vector["secret"].encode())
    assert adapter.verify(inbound({vector["header"]: vector["value"]}), [secret]).key_id == "published"
    assert adapter.sign(adapter.sample(NOW), secret, NOW).headers[vector["header"]] == vector["value"]


def test_the_url_token_vector_is_what_issue_token_produces_and_verifies() -> None:
    (vector,) = json.loads((VECTORS / "url-token.json").read_text())["vectors"]
    assert issue_token(vector["secret"].encode(), vector["tenant"], vector["connector"]) == vector["token"]
    request = inbound(
        {}, f"https://hub.example/hooks/{vector['tenant']}/{vector['connector']}", {"token": vector["token"]}
    )
    assert UrlTokenAdapter.configure().verify(request, [SigningSecret("k", vector["secret"].encode())]).key_id == "k"


def _same_bytes(a: str, b: str) -> bool:
    """Whether two base64 (or base64url, dot-separated) spellings decode to the same bytes: the low
    bits of a last base64 character carry nothing, so such a flip is the same credential."""

    def decoded(value: str) -> list[bytes] | None:
        try:
            return [base64.urlsafe_b64decode(p.replace("+", "-").replace("/", "_") + "==") for p in value.split(".")]
        except ValueError:
            return None

    return decoded(a) is not None and decoded(a) == decoded(b)


@settings(max_examples=60)
@given(
    secret=st.binary(min_size=1, max_size=64).map(lambda b: b.hex().encode()),
    index=st.integers(0),
    bit=st.integers(0, 6),
)
def test_round_trip_and_any_flipped_credential_bit_is_rejected(secret: bytes, index: int, bit: int) -> None:
    """The credential is all these schemes check: sign then verify accepts; a flipped bit refuses,
    unless it only changes how base64 spells the same bytes."""
    cases: list[tuple[Any, SigningSecret, str, str, bool]] = [
        (BasicAuthAdapter.configure(), SigningSecret("k", b"user:" + secret), "Authorization", "Basic ", True),
        (TokenAdapter.configure(), SigningSecret("k", secret), "Authorization", "Bearer ", False),
    ]
    for adapter, key, header, prefix, encoded in cases:
        headers = adapter.sign(adapter.sample(NOW), key, NOW).headers
        assert adapter.verify(inbound(headers), [key]).key_id == "k"
        value = headers[header][len(prefix) :]
        tampered = _flip(value, index, bit)
        if encoded and _same_bytes(value, tampered):
            continue
        with pytest.raises(SignatureError):
            adapter.verify(inbound({header: prefix + tampered}), [key])
    token = issue_token(secret, "acme", "orders")
    tampered = _flip(token, index, bit)
    if not _same_bytes(token, tampered):
        with pytest.raises(SignatureError):
            UrlTokenAdapter.configure().verify(inbound({}, query={"token": tampered}), [SigningSecret("k", secret)])


def _flip(value: str, index: int, bit: int) -> str:
    position = index % len(value)
    return value[:position] + chr(ord(value[position]) ^ (1 << bit)) + value[position + 1 :]
