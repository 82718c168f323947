"""Dotted-name patterns (schemas/patterns.py): `*` one token, a final `>` one or more, nothing else wild."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.patterns import check_pattern, is_within, matches


@pytest.mark.parametrize(
    "pattern",
    ["github.push", "github", "*", ">", "github.*", "github.>", "*.push", "a.*.c", "a.*.>", "A-b_9.c", "x" * 200],
)
def test_well_formed_patterns_are_kept(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("github.pull_*", "token 'pull_\\*'"),
        ("*github", "token '\\*github'"),
        ("github.*x.opened", "token '\\*x'"),
        ("github.>.opened", "`>` may only be the last token"),
        (">.a", "`>` may only be the last token"),
        ("github.>>", "token '>>'"),
        ("", "token ''"),
        ("github..push", "token ''"),
        ("github.", "token ''"),
        (".github", "token ''"),
        ("github push", "token 'github push'"),
        ("github.pu?h", "token 'pu\\?h'"),
        ("gïthub.push", "token 'gïthub'"),
    ],
)
def test_malformed_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("github.pull_request.*", "github.pull_request.opened", True),
        ("github.pull_request.*", "github.pull_request", False),
        ("github.pull_request.*", "github.pull_request.a.b", False),
        ("github.pull_request.*", "github.pull_request.", False),
        ("github.>", "github.push", True),
        ("github.>", "github.pull_request.review.submitted", True),
        ("github.>", "github", False),
        ("github.>", "github.", False),
        ("github.>", "githubx.push", False),
        (">", "anything", True),
        (">", "a.b.c", True),
        ("*", "github", True),
        ("*", "github.push", False),
        ("*.push", "gitlab.push", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.b.c", False),
        ("a.*.>", "a.b", False),
        ("a.*.>", "a.b.c.d", True),
        ("github.push", "github.push", True),
        ("github.push", "github.pushed", False),
        ("github.push", "xgithub.push", False),
        ("github.push", "GitHub.push", False),
        ("github.pull-request", "github.pull_request", False),
        ("github.*", "github.op+ned", True),
        ("github.*", "github.", False),
    ],
)
def test_matches(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("name", "prefix", "expected"),
    [
        ("svc.a", "svc", True),
        ("svc", "svc", True),
        ("svc.a.b.c", "svc.a", True),
        ("svcx", "svc", False),
        ("svcx.a", "svc", False),
        ("svc.ab", "svc.a", False),
        ("svc", "svc.a", False),
        ("hub.events.x", "hub", True),
        ("hubx.events", "hub", False),
    ],
)
def test_is_within_is_token_wise(name: str, prefix: str, expected: bool) -> None:
    assert is_within(name, prefix) is expected


# --- property: `matches` agrees with a token-by-token reference -----------------------------------

_TOKENS = st.sampled_from(["a", "b", "push", "x-y", "z_1"])
_PATTERN_TOKENS = st.sampled_from(["a", "b", "push", "x-y", "z_1", "*"])


def _reference(pattern: str, name: str) -> bool:
    wanted, tokens = pattern.split("."), name.split(".")
    if wanted[-1] == ">":
        head = wanted[:-1]
        return len(tokens) > len(head) and all(p in ("*", t) for p, t in zip(head, tokens, strict=False))
    return len(tokens) == len(wanted) and all(p in ("*", t) for p, t in zip(wanted, tokens, strict=True))


@settings(max_examples=400, database=None)
@given(
    st.lists(_PATTERN_TOKENS, min_size=1, max_size=4),
    st.booleans(),
    st.lists(_TOKENS, min_size=1, max_size=5),
)
def test_matches_agrees_with_a_token_wise_reference(pattern_tokens: list[str], tail: bool, tokens: list[str]) -> None:
    pattern = ".".join([*pattern_tokens, ">"] if tail else pattern_tokens)
    name = ".".join(tokens)
    assert check_pattern(pattern) == pattern
    assert matches(pattern, name) is _reference(pattern, name)
