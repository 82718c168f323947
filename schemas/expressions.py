"""JMESPath expressions in specs, checked when the spec is loaded rather than when an event comes.

Besides compiling, the check bounds the expression's shape: tenants write these expressions and
the hub evaluates them on its event loop. The shape limits refuse the obviously hostile (dozens of
multi-selects piped into one another, nesting hundreds deep) with a message naming the limit;
`schemas.bounded_jmespath` bounds what an admitted expression may cost on a given event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jmespath
from jmespath.exceptions import JMESPathError

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

MAX_EXPRESSION_CHARS = 1024
MAX_NODES = 256
"""AST nodes: a chain of 40 comparisons like `data.action == 'x' || ...` is 240."""
MAX_DEPTH = 64
"""AST nesting: parentheses and dotted paths add none; a `||` chain nests once per term, filters
and function calls once each. Keeps the evaluator's recursion shallow."""
MAX_MULTI_SELECTS = 4
"""`[a, b]` and `{k: a}`: each builds a new value out of shared references, so a chain of them
multiplies a value's size (`[@,@]|[@,@]|...` doubles it per stage). Composite keys need one or two."""
MAX_PROJECTIONS = 8
"""`[*]`, `*`, `[]` and `[?...]`: each runs the rest of the expression once per element, so nested
ones multiply (a projection inside a filter inside a filter...)."""

_MULTI_SELECTS = frozenset({"multi_select_list", "multi_select_dict"})
_PROJECTIONS = frozenset({"projection", "value_projection", "filter_projection", "flatten"})


def check_jmespath(expression: str | None) -> str | None:
    """The expression if it compiles and is within the shape limits, else ValueError saying why."""
    if expression is None:
        return None
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"a JMESPath expression is at most {MAX_EXPRESSION_CHARS} characters")
    try:
        parsed = jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError("invalid JMESPath: " + " ".join(str(exc).split())) from None  # one line per problem
    except RecursionError:  # the parser recurses once per nested parenthesis or call
        raise ValueError(f"a JMESPath expression is nested at most {MAX_DEPTH} levels deep") from None
    problem = _shape_problem(parsed.parsed)
    if problem is not None:
        raise ValueError(f"a JMESPath expression {problem}")
    return expression


def _shape_problem(tree: _TreeNode) -> str | None:
    """Which shape limit the parsed expression exceeds (as the end of a sentence), or None."""
    nodes = depth = multi_selects = projections = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        nodes += 1
        depth = max(depth, level)
        kind = node["type"]
        multi_selects += kind in _MULTI_SELECTS
        projections += kind in _PROJECTIONS
        stack.extend((child, level + 1) for child in node["children"] if isinstance(child, dict))  # slices: ints
    limits = (
        (nodes, MAX_NODES, "has at most {limit} nodes (operators, fields, literals); this one has {n}"),
        (depth, MAX_DEPTH, "is nested at most {limit} levels deep; this one is {n}"),
        (multi_selects, MAX_MULTI_SELECTS, "has at most {limit} multi-selects ([a, b] or {{k: a}}); this one has {n}"),
        (projections, MAX_PROJECTIONS, "has at most {limit} projections ([*], *, [] or [?...]); this one has {n}"),
    )
    for n, limit, sentence in limits:
        if n > limit:
            return sentence.format(limit=limit, n=n)
    return None
