"""The Svix specifics every Svix-signed sender shares (Clerk, Resend): one suite, subclassed per provider
with its own adapter and a realistic body, so the SDK vectors and the scheme's quirks are proven for each
registered name (the richer scheme suite is `test_svix.py`; what every provider keeps is in
`test_conformance.py`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from adapters.webhooks.svix import SvixAdapter
from tests.adapters.harness import NOW, Endpoint, Headers, refusal_reason, vectors

NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 24))
MSG_ID = "msg_2h3NAj8mWdx6Y9dPn7yTE5gWU3x"
SVIX = ("svix-id", "svix-timestamp", "svix-signature")


def svix_signature(secret: SigningSecret, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """`svix-signature` computed independently: HMAC-SHA256 keyed by the base64 after `whsec_`."""
    key = base64.b64decode(secret.value.removeprefix(b"whsec_") + b"==")
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class SvixSchemeSuite:
    """Subclass as `Test<Provider>Scheme` with `adapter` and `body`."""

    adapter: ClassVar[SvixAdapter]
    body: ClassVar[bytes]

    def inbound(self, headers: Headers, body: bytes | None = None) -> InboundRequest:
        return Endpoint(f"http://hub.test/hooks/acme/{self.adapter.name}", self.body)(headers, body)

    def delivery(
        self, signer: SigningSecret = NEW, body: bytes | None = None, msg_id: str = MSG_ID, timestamp: int = NOW
    ) -> InboundRequest:
        body = self.body if body is None else body
        signature = svix_signature(signer, msg_id, timestamp, body)
        return self.inbound(dict(zip(SVIX, (msg_id, str(timestamp), signature), strict=True)), body)

    def reason_of(self, request: InboundRequest, secrets: list[SigningSecret]) -> str:
        return refusal_reason(self.adapter, request, secrets)

    def test_sdk_vectors_verify_and_are_what_sign_produces(self) -> None:
        published = vectors(self.adapter.name)
        assert published
        for vector in published:
            secret, body = SigningSecret("sdk", vector["secret"].encode()), vector["payload"].encode()
            headers = dict(zip(SVIX, (vector["msg_id"], str(vector["timestamp"]), vector["signature"]), strict=True))
            verification = self.adapter.verify(self.inbound(headers, body), [secret])
            assert verification == Verification("hmac-sha256", "sdk", float(vector["timestamp"]))
            signing = TestRequest(headers={"svix-id": vector["msg_id"]}, body=body)
            assert (
                self.adapter.sign(signing, secret, vector["timestamp"]).headers["svix-signature"] == vector["signature"]
            )
            assert vector["signature"] == svix_signature(secret, vector["msg_id"], vector["timestamp"], body)

    def test_is_a_standard_webhooks_adapter_with_the_svix_headers(self) -> None:
        assert isinstance(self.adapter, StandardWebhooksAdapter)
        assert (self.adapter.replay_window_s, self.adapter.scheme.signature_header) == (
            300,
            "svix-signature (white-label: webhook-signature)",
        )

    def test_a_changed_id_or_timestamp_does_not_match(self) -> None:
        good = dict(self.delivery().headers)
        assert self.reason_of(self.inbound({**good, "svix-timestamp": str(NOW - 1)}), [NEW]) == "no_match"
        assert self.reason_of(self.inbound({**good, "svix-id": "msg_other"}), [NEW]) == "no_match"

    @pytest.mark.parametrize(
        "changed",
        [{"svix-signature": "v1,AAAA"}, {"svix-signature": "v1 abc"}, {"svix-timestamp": "17e8"}, {"svix-id": "msg.1"}],
    )
    def test_malformed_headers_are_signature_errors(self, changed: dict[str, str]) -> None:
        headers = {**dict(self.delivery().headers), **changed}
        assert self.reason_of(self.inbound(headers), [NEW]) == "malformed_signature"

    def test_a_malformed_item_before_a_valid_one_is_skipped(self) -> None:
        headers = dict(self.delivery().headers)
        headers["svix-signature"] = "v1,AAAA " + headers["svix-signature"]
        assert self.adapter.verify(self.inbound(headers), [NEW]).key_id == "new"

    def test_has_no_handshake(self) -> None:
        assert self.adapter.handshake(self.delivery(), [NEW]) is None

    # Each subclass runs this with its own adapter; the method keeps no state between examples.
    @settings(max_examples=40, suppress_health_check=[HealthCheck.differing_executors])
    @given(key=st.binary(min_size=24, max_size=64), timestamp=st.integers(0, 10**11))
    def test_sign_is_the_svix_algorithm_for_any_key_and_time(self, key: bytes, timestamp: int) -> None:
        secret = SigningSecret("k", b"whsec_" + base64.b64encode(key))
        headers = self.adapter.sign(TestRequest(headers={"svix-id": MSG_ID}, body=self.body), secret, timestamp).headers
        assert headers["svix-signature"] == svix_signature(secret, MSG_ID, timestamp, self.body)
