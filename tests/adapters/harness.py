"""What the adapter tests share: requests as the hub hands them over, bit flips, refusal checks, vectors.

The conformance suite (`test_conformance.py`) and every provider's own tests build on these, so that
a provider's file holds its published vectors and its quirks, not another copy of the harness.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.base import InboundRequest, SigningSecret, WebhookAdapter
from adapters.errors import SignatureError

NOW = 1_700_000_000
"""The default moment of the tests: 2023-11-14T22:13:20Z."""

VECTORS = Path(__file__).parent.parent / "vectors"

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def vector_document(name: str) -> dict[str, Any]:
    """`tests/vectors/<name>.json`, the provider's published or SDK-made vectors and their origin."""
    document: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return document


def vectors(name: str) -> list[dict[str, Any]]:
    """The `vectors` list of `tests/vectors/<name>.json`."""
    found: list[dict[str, Any]] = vector_document(name)["vectors"]
    return found


@dataclass(frozen=True)
class Endpoint:
    """Where a test's requests arrive and what they carry unless a call says otherwise.

    `inbound = Endpoint("http://hub.test/hooks/acme/gh", BODY)`, then `inbound(headers)` or
    `inbound(headers, tampered_body)`: an `InboundRequest` as the hub builds it from what it received.
    """

    url: str = "http://hub.test/hooks/acme/test"
    body: bytes = b""
    received_at: float = NOW
    method: str = "POST"
    keys: Mapping[str, bytes] = field(default_factory=dict)

    def __call__(
        self,
        headers: Headers = (),
        body: bytes | None = None,
        *,
        url: str | None = None,
        received_at: float | None = None,
        method: str | None = None,
        query: Mapping[str, str] | None = None,
        keys: Mapping[str, bytes] | None = None,
    ) -> InboundRequest:
        return InboundRequest(
            method=self.method if method is None else method,
            url=self.url if url is None else url,
            headers=headers,
            body=self.body if body is None else body,
            received_at=self.received_at if received_at is None else received_at,
            query=query,
            keys=self.keys if keys is None else keys,
        )


def flip(text: str, index: int, bit: int) -> str:
    """`text` with one bit of one character flipped, staying in ASCII (`index` wraps, `bit` is taken mod 7)."""
    index %= len(text)
    return text[:index] + chr(ord(text[index]) ^ (1 << bit % 7)) + text[index + 1 :]


def flip_byte(data: bytes, index: int, bit: int) -> bytes:
    """`data` with one bit of one byte flipped (`index` wraps, `bit` is taken mod 8)."""
    index %= len(data)
    return data[:index] + bytes([data[index] ^ (1 << bit % 8)]) + data[index + 1 :]


def refusal_reason(
    adapter: WebhookAdapter[Any],
    request: InboundRequest,
    secrets: Sequence[SigningSecret],
) -> str:
    """The reason `adapter` refuses `request`, after checking the error names the provider and leaks nothing."""
    with pytest.raises(SignatureError) as caught:
        adapter.verify(request, secrets)
    assert caught.value.provider == adapter.name
    assert_no_secret_or_signature(str(caught.value), request, secrets)
    return caught.value.reason


def assert_no_secret_or_signature(message: str, request: InboundRequest, secrets: Sequence[SigningSecret]) -> None:
    """Refusals never echo a secret or a header value (signatures, ids, timestamps)."""
    assert all(secret.value.decode(errors="replace") not in message for secret in secrets)
    assert all(len(value) < 8 or value[:8] not in message for value in request.headers.values())
