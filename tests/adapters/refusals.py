"""Shared assertions about refusals: the right provider, a specific reason, nothing leaked."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adapters.base import InboundRequest, SigningSecret, WebhookAdapter
from adapters.errors import SignatureError


def refusal_reason(
    adapter: WebhookAdapter,  # type: ignore[type-arg]
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
