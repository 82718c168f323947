"""The bounded JMESPath evaluator: ordinary expressions evaluate exactly as `jmespath` does; hostile ones
are refused by the shape limits at validation or stopped by the budget at evaluation, quickly."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import jmespath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.bounded_jmespath import UNITS, BoundedExpression, Budget, BudgetExceeded
from schemas.expressions import MAX_MULTI_SELECTS, check_jmespath

QUICK_S = 1.0
"""Every stopped evaluation here must give up well within this (they take tens of milliseconds); plain
jmespath takes seconds to minutes on the same expressions."""

PUSH = {
    "specversion": "1.0",
    "id": "d-1",
    "type": "github.push",
    "hubtenant": "acme",
    "data": {
        "ref": "refs/heads/main",
        "action": "opened",
        "draft": False,
        "amount": 120.5,
        "repository": {"full_name": "acme/app", "private": True},
        "pull_request": {"number": 7, "labels": [{"name": "deploy"}, {"name": "ui"}]},
        "labels": ["deploy", "ui"],
        "commits": [{"id": str(n), "message": f"fix {n}", "added": ["a.py"] * n} for n in range(5)],
        "tags": {"env": "prod", "team": "core"},
        "items": [
            {"id": n, "state": "open" if n % 2 else "closed", "n": n, "at": f"2024-05-0{n + 1}"} for n in range(4)
        ],
    },
}

REALISTIC = [
    # From the examples, docs and tests of this repository.
    "data.ref == 'refs/heads/main'",
    "data.ref == 'refs/heads/main' && hubtenant == 'acme'",
    "data.pull_request.number",
    "contains(data.labels, 'deploy')",
    "length(data.items) > `0`",
    "data.amount > `100`",
    "data.repo",
    "data.key",
    "data.ok",
    "items",
    "id",
    "meta.next",
    "links.next",
    "data",
    # Common idioms.
    "data.action == 'opened' || data.action == 'reopened'",
    "!data.draft",
    "starts_with(data.ref, 'refs/tags/')",
    "contains(data.pull_request.labels[].name, 'deploy')",
    "data.items[?state == 'open'].id",
    "data.items[?n > `1`] | [0]",
    "data.items[-1].at",
    "sort_by(data.items, &n)[-1].id",
    "max_by(data.items, &n).n",
    "join(',', data.labels)",
    "to_string(data.amount)",
    "sum(data.items[*].n)",
    "avg(data.items[].n)",
    "data.commits[].added[]",
    "data.commits[1:3].id",
    "data.commits[::-1].message",
    "length(data.commits[?length(added) > `2`])",
    "{repo: data.repository.full_name, ref: data.ref}",
    "[data.repository.full_name, data.pull_request.number]",
    "data.tags.*",
    "keys(data.tags)",
    "values(data.tags)",
    'merge(data.tags, `{"env": "dev"}`)',
    "map(&id, data.items)",
    "not_null(data.missing, data.ref)",
    "type(data.amount)",
    "to_number('42')",
    'contains(`["opened", "reopened"]`, data.action)',
    "data.ref != 'refs/heads/main' && data.draft == `false`",
    "sort(data.labels)",
    "reverse(data.labels)",
    "ends_with(data.repository.full_name, '/app')",
    "data.items[?state == 'open' && n >= `1`] | length(@)",
    "to_array(data.ref)",
    "floor(data.amount)",
    "data.commits[*].{id: id, n: length(added)}",
]


def plain(expression: str, data: Any) -> tuple[str, Any]:
    """What jmespath gives: ("value", v) or ("error", the exception's type)."""
    try:
        return "value", jmespath.search(expression, data)
    except Exception as exc:  # any: the bounded evaluator must raise the same type
        return "error", type(exc)


def bounded(expression: str, data: Any) -> tuple[str, Any]:
    try:
        return "value", BoundedExpression(expression).search(data)
    except Exception as exc:
        return "error", type(exc)


@pytest.mark.parametrize("expression", REALISTIC)
def test_realistic_expressions_pass_the_shape_limits_and_evaluate_as_jmespath(expression: str) -> None:
    assert check_jmespath(expression) == expression
    assert bounded(expression, PUSH) == plain(expression, PUSH)
    assert bounded(expression, PUSH["data"]) == plain(expression, PUSH["data"])


def test_the_realistic_expressions_are_not_trivially_null() -> None:
    """The equivalence above means something only if most of them select something on PUSH."""
    selecting = [e for e in REALISTIC if plain(e, PUSH)[1] not in (None, [], {}, False)]
    assert len(selecting) > len(REALISTIC) * 3 // 4


_KEYS = st.sampled_from(["ref", "action", "labels", "items", "n", "id", "state", "draft", "amount", "tags", "name"])
_SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-10, 10, allow_nan=False) | st.text(max_size=6)
_JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5), max_leaves=25
)


@given(data=st.dictionaries(_KEYS, _JSON, max_size=8), expression=st.sampled_from(REALISTIC))
def test_same_value_or_same_error_as_jmespath_on_any_event(data: dict[str, Any], expression: str) -> None:
    """Events of every shape: the bounded evaluator agrees with jmespath, errors included (the gate turns
    those into "no match", so the error type matters as much as the value)."""
    event = {"data": data, "hubtenant": "acme"} | data
    assert bounded(expression, event) == plain(expression, event)


# --- hostile expressions -------------------------------------------------------------------------

HOSTILE = "length(to_string(" + "|".join(["[@,@,@,@,@,@,@,@]"] * 8) + "))"
"""The expression of the finding: 162 characters, 50 s on a tiny event with plain jmespath."""
LITERAL_100 = "`[" + ",".join(["0"] * 100) + "]`"
NESTED_FILTERS = f"{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?{LITERAL_100}[?`false`]]]]"
"""Four filters over literal lists nested in one another: 100**4 evaluations, no large value at all.
Within every shape limit; plain jmespath runs for minutes."""
WIDE = "[" + ",".join(["@"] * 50) + "]"
FOUR_WIDE = "(" + "|".join([WIDE] * 4) + ")"
"""50**4 = 6 million copies of the input, as shared references: within the shape limits."""


def stopped(expression: str, data: Any, budget: Budget | None = None, *, sized: bool = False) -> str:
    """The BudgetExceeded message of evaluating `expression`, which must come quickly."""
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as raised:
        BoundedExpression(expression).search(data, budget, sized=sized)
    assert time.monotonic() - started < QUICK_S
    return str(raised.value)


def test_the_finding_is_refused_at_validation_and_stopped_at_evaluation() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_MULTI_SELECTS} multi-selects .*this one has 8"):
        check_jmespath(HOSTILE)
    assert stopped(HOSTILE, PUSH) == f"evaluation cost more than {UNITS} units"


@pytest.mark.parametrize(
    ("expression", "limit"),
    [
        ("length(" * 70 + "@" + ")" * 70, "nested at most 64 levels deep; this one is 71"),
        ("(" * 500 + "a" + ")" * 500, "nested at most 64 levels deep"),  # the parser itself gives up
        (" || ".join(["a"] * 70), "nested at most 64 levels deep; this one is 70"),
        (" || ".join(["a.b == 'x'"] * 50), "at most 256 nodes"),
        ("[" + ",".join(["a"] * 300) + "]", "at most 256 nodes"),
        ("a[*].b[*].c[*].d[*].e[*].f[*].g[*].h[*].i[*]", "at most 8 projections"),
        ("a[][][][][][][][][]", "at most 8 projections"),
        ("[@,@]|[@,@]|{a: @}|[@]|[@]", "at most 4 multi-selects"),
    ],
)
def test_shape_limits_name_the_limit(expression: str, limit: str) -> None:
    with pytest.raises(ValueError, match="a JMESPath expression ") as raised:
        check_jmespath(expression)
    assert limit in str(raised.value)


@pytest.mark.parametrize(
    "expression",
    [
        NESTED_FILTERS,
        f"length(to_string({FOUR_WIDE}))",  # serializing a huge value
        f"length({FOUR_WIDE}[][][])",  # flattening one
        f"sort({FOUR_WIDE}[][][][*].ref)",  # sorting one
        f"join(',', {FOUR_WIDE}[][][][*].ref)",  # joining one
        f"({WIDE}|{WIDE}) == ({WIDE}|{WIDE})",  # comparing two
        f"contains({FOUR_WIDE}[][][], 'x')",  # searching one
        f"map(&map(&map(&@, {LITERAL_100}), {LITERAL_100}), {LITERAL_100})",  # building one
    ],
)
def test_expressions_within_the_shape_limits_are_stopped_by_the_budget(expression: str) -> None:
    assert check_jmespath(expression) == expression
    data = {"ref": "refs/heads/main", "list": list(range(100))}
    assert stopped(expression, data) == f"evaluation cost more than {UNITS} units"


@pytest.mark.parametrize("function", ["sort", "to_string", "reverse", "max", "sum", "keys"])
def test_functions_are_charged_the_size_of_their_arguments(function: str) -> None:
    """A large list from the event is cheap to select but not to process; repeating the processing must
    add up: 60 passes over 20,000 elements are over the budget (a single pass is not)."""
    items = list(range(20_000))
    argument = "@" if function != "keys" else "{a: @}"
    single = f"{function}({argument})"
    assert BoundedExpression(single).search(items) == jmespath.search(single, items)
    stopped("[" + ", ".join([single] * 60) + "]", items)


@pytest.mark.parametrize("expression", [WIDE + "[]", "@[::1]"])
def test_flatten_and_slices_are_charged_before_they_copy(expression: str) -> None:
    """A projection over their result would stop soon enough, but only after the copy: 50 flattened
    references to a million-element list are 400 MB. Charged first, nothing is copied."""
    items = list(range(1_000_000))
    tracemalloc.start()
    try:
        stopped(expression, items)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_a_huge_glue_is_charged_once_per_element() -> None:
    """`join` copies its glue between every two elements: a 1 MB glue over 1,000 elements is 1 GB."""
    data = {"glue": "x" * 1_000_000, "parts": ["a"] * 1000}
    stopped("join(glue, parts)", data)
    assert BoundedExpression("join(glue, parts[:3])").search(data) == "a" + data["glue"] + "a" + data["glue"] + "a"


def test_a_huge_result_costs_only_when_sized() -> None:
    """Built from shared references, the value itself is cheap to make; serializing it is not, so callers
    that serialize the result (debounce keys, poll items) ask for it to be sized."""
    expression = BoundedExpression(FOUR_WIDE)
    assert len(expression.search({"a": 1})) == 50
    stopped(FOUR_WIDE, {"a": 1}, sized=True)


def test_the_deadline_is_a_backstop() -> None:
    message = stopped(NESTED_FILTERS, {}, Budget(units=10**12, seconds=0.05))
    assert message == "evaluation ran past its deadline"


def test_a_shared_budget_carries_over_between_evaluations() -> None:
    budget = Budget(units=1000)
    expression = BoundedExpression("items[*].id")
    data = {"items": [{"id": n} for n in range(200)]}  # 202 units: the projection, `items`, 200 `id`s
    for _ in range(4):
        expression.search(data, budget)
    assert budget.units_left == 1000 - 4 * 202
    with pytest.raises(BudgetExceeded):
        expression.search(data, budget)


def test_data_nested_too_deeply_for_python_is_over_budget_not_a_crash() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    assert stopped("to_string(@)", deep) == "the data is nested too deeply for this expression"


def test_ordinary_evaluations_use_a_small_part_of_the_budget() -> None:
    budget = Budget()
    for expression in REALISTIC:
        BoundedExpression(expression).search(PUSH, budget)
    assert UNITS - budget.units_left < UNITS // 20
