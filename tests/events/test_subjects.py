"""Subjects (docs/design.md §5): untrusted event types can never escape `hub.events.<tenant>.<connector>.`."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from events.subjects import (
    MAX_TOKEN_CHARS,
    MAX_TYPE_TOKENS,
    audit_subject,
    check_name,
    dlq_subject,
    event_subject,
    events_prefix,
    invocation_subject,
    sanitize_token,
    type_tokens,
)

TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
HOSTILE_TYPES = ["*", ">", "a.*.>", "..", ".", "", " ", "a b", "a\r\nb", "x\x00y", "ünï.cødé", "a." * 20, "x" * 10_000]

type_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(".*> \t\r\n\x00\x7f-_aZ9é"), max_size=200),
    st.lists(st.sampled_from(["*", ">", "", " ", "github", "push", "a.b", "\n"]), max_size=30).map(".".join),
)


@settings(max_examples=2000, database=None)
@given(event_type=type_text)
@example(event_type="x" * 10_000)
@example(event_type="." * 10_000)
@example(event_type="")
def test_event_subject_is_always_safe(event_type: str) -> None:
    subject = event_subject("acme", "gh-acme", event_type)
    assert subject.startswith("hub.events.acme.gh-acme.")
    tokens = subject.split(".")
    assert tokens[:4] == ["hub", "events", "acme", "gh-acme"]
    type_part = tokens[4:]
    assert 1 <= len(type_part) <= MAX_TYPE_TOKENS
    for token in tokens:
        assert token not in ("", "*", ">")
        assert TOKEN.fullmatch(token), token
    assert not re.search(r"[\s\x00-\x1f\x7f]", subject)


@pytest.mark.parametrize("event_type", HOSTILE_TYPES)
def test_hostile_types(event_type: str) -> None:
    tokens = event_subject("t", "c", event_type).split(".")
    assert len(tokens) - 4 == len(type_tokens(event_type))
    assert all(TOKEN.fullmatch(token) for token in tokens)


@pytest.mark.parametrize(
    ("event_type", "tokens"),
    [
        ("github.pull_request.opened", ["github", "pull_request", "opened"]),
        ("stripe.invoice.paid", ["stripe", "invoice", "paid"]),
        ("a.*.>", ["a", "_", "_"]),
        ("a..b", ["a", "_", "b"]),
        ("", ["_"]),
        ("sp ace", ["sp_ace"]),
        ("a\r\nb", ["a_b"]),
        ("1.2.3.4.5.6.7.8.9.10", ["1", "2", "3", "4", "5", "6", "7", "8_9_10"]),
    ],
)
def test_type_tokens(event_type: str, tokens: list[str]) -> None:
    assert type_tokens(event_type) == tokens


def test_tokens_are_bounded() -> None:
    assert sanitize_token("x" * 1000) == "x" * MAX_TOKEN_CHARS
    assert len(type_tokens(".".join(["y" * 100] * 50))) == MAX_TYPE_TOKENS


def test_distinct_types_keep_distinct_subjects_where_safe() -> None:
    assert event_subject("t", "c", "github.push") != event_subject("t", "c", "github.pull_request")


@pytest.mark.parametrize("name", ["a", "acme", "gh-acme", "0", "a1-b2", "x" * 63])
def test_check_name_accepts(name: str) -> None:
    assert check_name("tenant", name) == name


@pytest.mark.parametrize(
    "name", ["", "-a", "a-", "A", "a_b", "a.b", "a*", ">", "a b", "a\n", "\na", "é", "x" * 64, "acme\x00"]
)
def test_check_name_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="tenant name"):
        check_name("tenant", name)


@pytest.mark.parametrize(("tenant", "connector"), [("bad.tenant", "c"), ("t", "*"), ("t", ">"), ("", "c")])
def test_event_subject_rejects_bad_names(tenant: str, connector: str) -> None:
    with pytest.raises(ValueError, match="name"):
        event_subject(tenant, connector, "x")


def test_events_prefix() -> None:
    assert events_prefix("acme", "gh") == "hub.events.acme.gh."


def test_invocation_dlq_and_audit_subjects() -> None:
    assert invocation_subject("acme", "gh", "deploys") == "hub.invocations.acme.gh.deploys"
    assert dlq_subject("acme", "gh", "deploys") == "hub.dlq.acme.gh.deploys"
    assert audit_subject("acme", "policy_denied") == "hub.audit.acme.policy_denied"
    assert audit_subject("acme", "a.b >*") == "hub.audit.acme.a_b_"


@pytest.mark.parametrize("builder", [invocation_subject, dlq_subject])
@pytest.mark.parametrize(("tenant", "connector", "route"), [("t", "c", "a.b"), ("t", "c", "*"), ("T", "c", "r")])
def test_route_subjects_reject_bad_names(
    builder: Callable[[str, str, str], str], tenant: str, connector: str, route: str
) -> None:
    with pytest.raises(ValueError, match="name"):
        builder(tenant, connector, route)


def test_audit_subject_rejects_bad_tenant() -> None:
    with pytest.raises(ValueError, match="tenant name"):
        audit_subject("a.b", "x")
