"""The success statuses each provider declares (`SchemeInfo.accepted_status` / `duplicate_status`)."""

from __future__ import annotations

import pytest

from adapters.base import SchemeInfo
from adapters.registry import WEBHOOK_PROVIDERS

ONLY_200 = {"zoom", "mailgun", "lemonsqueezy", "x", "paddle", "linear", "jira", "intercom"}
"""Providers that count 200 (Zoom and Jira: 200 or 204) as delivered and retry any other answer, 202
included (Intercom documents 200 only)."""


@pytest.mark.parametrize("name", sorted(WEBHOOK_PROVIDERS))
def test_every_provider_answers_what_it_counts_as_delivered(name: str) -> None:
    scheme = WEBHOOK_PROVIDERS[name].scheme
    expected = (200, 200) if name in ONLY_200 else (202, 200)
    assert (scheme.accepted_status, scheme.duplicate_status) == expected


@pytest.mark.parametrize("status", [199, 301, 400, 503])
def test_a_success_status_outside_2xx_is_refused(status: int) -> None:
    facts = {"signature_header": "X", "algorithm": "a", "signed_content": "b", "encoding": "c", "timestamp": None}
    with pytest.raises(ValueError, match="must be 2xx"):
        SchemeInfo(**facts, dedupe_key="d", accepted_status=status)
    with pytest.raises(ValueError, match="must be 2xx"):
        SchemeInfo(**facts, dedupe_key="d", duplicate_status=status)
