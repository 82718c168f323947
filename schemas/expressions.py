"""JMESPath expressions in specs, checked when the spec is loaded rather than when an event comes."""

from __future__ import annotations

import jmespath
from jmespath.exceptions import JMESPathError

MAX_EXPRESSION_CHARS = 1024


def check_jmespath(expression: str | None) -> str | None:
    """The expression if it compiles, else ValueError with the parser's message."""
    if expression is None:
        return None
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"a JMESPath expression is at most {MAX_EXPRESSION_CHARS} characters")
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError("invalid JMESPath: " + " ".join(str(exc).split())) from None  # one line per problem
    return expression
