"""The scheme tests every Svix-signed sender shares (Clerk, Resend): one suite, subclassed per
provider with its own adapter and a realistic body, so the scheme is proven for each registered
name without a copy of the tests per provider (the richer scheme suite is `test_svix.py`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import InboundRequest, SigningSecret, TestRequest, Verification
from adapters.errors import ReplayWindowError, SignatureError
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from adapters.webhooks.svix import SvixAdapter
from hub.ingress.handler import check_replay_window
from tests.adapters.refusals import refusal_reason

NOW = 1_700_000_000
OLD = SigningSecret("old", b"whsec_" + base64.b64encode(b"o" * 24))
NEW = SigningSecret("new", b"whsec_" + base64.b64encode(b"n" * 24))
MSG_ID = "msg_2h3NAj8mWdx6Y9dPn7yTE5gWU3x"
SVIX = ("svix-id", "svix-timestamp", "svix-signature")
VECTORS = Path(__file__).parent.parent / "vectors"


def svix_signature(secret: SigningSecret, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """`svix-signature` computed independently: HMAC-SHA256 keyed by the base64 after `whsec_`."""
    key = base64.b64decode(secret.value.removeprefix(b"whsec_") + b"==")
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped (staying in ASCII)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


class SvixSchemeSuite:
    """Subclass as `Test<Provider>Scheme` with `adapter`, `body` and `tamper` (old, new bytes in the body)."""

    adapter: ClassVar[SvixAdapter]
    body: ClassVar[bytes]
    tamper: ClassVar[tuple[bytes, bytes]]

    def inbound(self, headers: dict[str, str] | Iterable[tuple[str, str]], body: bytes | None = None) -> InboundRequest:
        url = f"http://hub.test/hooks/acme/{self.adapter.name}"
        return InboundRequest(
            method="POST", url=url, headers=headers, body=self.body if body is None else body, received_at=NOW
        )

    def delivery(
        self, signer: SigningSecret = NEW, body: bytes | None = None, msg_id: str = MSG_ID, timestamp: int = NOW
    ) -> InboundRequest:
        body = self.body if body is None else body
        signature = svix_signature(signer, msg_id, timestamp, body)
        return self.inbound(dict(zip(SVIX, (msg_id, str(timestamp), signature), strict=True)), body)

    def reason_of(self, request: InboundRequest, secrets: list[SigningSecret]) -> str:
        return refusal_reason(self.adapter, request, secrets)

    def test_sdk_vectors_verify_and_are_what_sign_produces(self) -> None:
        vectors = json.loads((VECTORS / f"{self.adapter.name}.json").read_text())["vectors"]
        assert vectors
        for vector in vectors:
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

    @pytest.mark.parametrize("signer", [OLD, NEW])
    def test_rotation_accepts_either_secret_and_names_it(self, signer: SigningSecret) -> None:
        verification = self.adapter.verify(self.delivery(signer), [OLD, NEW])
        assert (verification.key_id, verification.signed_at) == (signer.key_id, NOW)

    def test_tampering_and_wrong_secret_do_not_match(self) -> None:
        good = dict(self.delivery().headers)
        assert self.reason_of(self.inbound(good, self.body.replace(*self.tamper)), [NEW]) == "no_match"
        assert self.reason_of(self.inbound({**good, "svix-timestamp": str(NOW - 1)}), [NEW]) == "no_match"
        assert self.reason_of(self.inbound({**good, "svix-id": "msg_other"}), [NEW]) == "no_match"
        assert self.reason_of(self.delivery(), [OLD]) == "no_match"

    @pytest.mark.parametrize("name", SVIX)
    def test_each_header_is_required_exactly_once(self, name: str) -> None:
        headers = list(self.delivery().headers.items())
        assert self.reason_of(self.inbound([h for h in headers if h[0] != name]), [NEW]) == "missing_header"
        assert self.reason_of(self.inbound([*headers, (name, dict(headers)[name])]), [NEW]) == "duplicate_header"

    @pytest.mark.parametrize(
        "changed",
        [{"svix-signature": "v1,AAAA"}, {"svix-signature": "v1 abc"}, {"svix-timestamp": "17e8"}, {"svix-id": "msg.1"}],
    )
    def test_malformed_headers_are_signature_errors(self, changed: dict[str, str]) -> None:
        headers = {**dict(self.delivery().headers), **changed}
        assert self.reason_of(self.inbound(headers), [NEW]) == "malformed_signature"

    @pytest.mark.parametrize(("age", "reason"), [(301, "timestamp_too_old"), (-301, "timestamp_in_future")])
    def test_stale_and_future_timestamps_are_outside_the_window(self, age: int, reason: str) -> None:
        request = self.delivery(timestamp=NOW - age)
        with pytest.raises(ReplayWindowError) as caught:
            check_replay_window(self.adapter.verify(request, [NEW]).signed_at, NOW, self.adapter.replay_window_s or 0)
        assert caught.value.reason == reason

    def test_has_no_handshake(self) -> None:
        assert self.adapter.handshake(self.delivery(), [NEW]) is None

    # Each subclass runs this with its own adapter; the method keeps no state between examples.
    @settings(max_examples=40, suppress_health_check=[HealthCheck.differing_executors])
    @given(
        key=st.binary(min_size=24, max_size=64),
        timestamp=st.integers(0, 10**11),
        header=st.sampled_from(SVIX),
        index=st.integers(0),
        bit=st.integers(0, 7),
    )
    def test_round_trip_and_any_flipped_bit_is_rejected(
        self, key: bytes, timestamp: int, header: str, index: int, bit: int
    ) -> None:
        secret = SigningSecret("k", b"whsec_" + base64.b64encode(key))
        headers = self.adapter.sign(TestRequest(headers={"svix-id": MSG_ID}, body=self.body), secret, timestamp).headers
        assert headers["svix-signature"] == svix_signature(secret, MSG_ID, timestamp, self.body)
        assert self.adapter.verify(self.inbound(headers), [secret]).signed_at == timestamp
        position = index % len(self.body)
        tampered = self.body[:position] + bytes([self.body[position] ^ (1 << bit)]) + self.body[position + 1 :]
        with pytest.raises(SignatureError):
            self.adapter.verify(self.inbound(headers, tampered), [secret])
        with pytest.raises(SignatureError):
            self.adapter.verify(self.inbound({**headers, header: flip(headers[header], index, bit)}), [secret])
