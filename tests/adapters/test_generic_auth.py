"""The schemes for senders that cannot sign: HTTP basic, a shared token, a signed ingress URL.

The rules every provider keeps (round trips, rotation, every flipped bit of the credential, missing and
repeated headers) are proven for `basic`, `token` and `url-token` by test_conformance.py."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from adapters.base import SigningSecret
from adapters.webhooks.basic_auth import BasicAuthAdapter
from adapters.webhooks.token import TokenAdapter
from adapters.webhooks.url_token import UrlTokenAdapter, issue_token
from tests.adapters.harness import NOW, Endpoint, refusal_reason, vectors

BODY = orjson.dumps({"id": "evt_1", "kind": "order.paid"})
NEW = SigningSecret("new", b"alice:new-password")
URL = "https://hub.example/hooks/acme/orders"
inbound = Endpoint(URL, BODY)


def basic(credential: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credential).decode()}


class TestBasic:
    adapter = BasicAuthAdapter.configure({"idPath": "id", "typePath": "kind", "typePrefix": "shop"})

    def test_a_signed_sample_is_verified_as_http_basic(self) -> None:
        signed = self.adapter.sign(self.adapter.sample(NOW), NEW, NOW)
        assert self.adapter.verify(inbound(signed.headers), [NEW]).scheme == "http-basic"

    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ({}, "missing_header"),
            ({"Authorization": "Bearer abc"}, "malformed_signature"),
            ({"Authorization": "Basic !!not-base64!!"}, "malformed_signature"),
            ({"Authorization": "Basic dXNlcjowMB=="}, "malformed_signature"),  # user:00 spelled non-canonically
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
        [
            ({}, "missing_header"),
            ({"token": "x" * 600}, "malformed_signature"),
            ({"token": "garbage.sig"}, "malformed_signature"),  # not canonical base64url: one spelling per token
            ({"token": "WyJhY21lIiwib3JkZXJzIl0.AAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "no_match"),
        ],
    )
    def test_refusals(self, query: dict[str, str], reason: str) -> None:
        assert refusal_reason(self.adapter, inbound({}, query=query), [self.key]) == reason


@pytest.mark.parametrize(
    ("adapter", "name"), [(BasicAuthAdapter.configure(), "basic"), (TokenAdapter.configure(), "token")]
)
def test_published_credentials_verify_and_are_what_sign_produces(adapter: Any, name: str) -> None:
    (vector,) = vectors(name)
    secret = SigningSecret("published", vector["secret"].encode())
    assert adapter.verify(inbound({vector["header"]: vector["value"]}), [secret]).key_id == "published"
    assert adapter.sign(adapter.sample(NOW), secret, NOW).headers[vector["header"]] == vector["value"]


def test_the_url_token_vector_is_what_issue_token_produces_and_verifies() -> None:
    (vector,) = vectors("url-token")
    assert issue_token(vector["secret"].encode(), vector["tenant"], vector["connector"]) == vector["token"]
    url = f"https://hub.example/hooks/{vector['tenant']}/{vector['connector']}"
    request = inbound({}, url=url, query={"token": vector["token"]})
    assert UrlTokenAdapter.configure().verify(request, [SigningSecret("k", vector["secret"].encode())]).key_id == "k"
