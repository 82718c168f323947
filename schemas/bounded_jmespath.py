"""JMESPath evaluation that stops when it has cost too much.

Tenants write the expressions (route conditions, debounce keys, poll item selectors) and they run
on the hub's event loop, so plain `jmespath` would let one of them stall every connector: piping
`[@,@,@,@]` into itself builds values exponentially large out of shared references in a handful
of steps, and `to_string`, `==`, `sort` or `join` then walk the whole expansion. Structural limits
(`schemas.expressions.check_jmespath`) keep the AST small, but a small AST can still be expensive
(nested projections over literal lists cost the product of their lengths), so evaluation itself
is metered here:

- every AST node visited costs one unit, which bounds projections, filters and `map`;
- every operation whose cost depends on the size of its operands (function calls other than the
  O(1) ones, `==`/`!=`, flatten, slices) is charged the operands' size before it runs, measured
  by a walk that stops as soon as the remaining budget is spent, so an exponential value is never
  walked further than the budget;
- a wall-clock deadline, checked every few thousand units, is the backstop for anything the
  units misjudge.

Exceeding either raises `BudgetExceeded`. An expression within budget evaluates exactly as
`jmespath` evaluates it: the interpreter is `jmespath`'s own, with accounting added around it.

It lives in `schemas` because both the gate (`hub`) and the pollers (`adapters`, which must not
import `hub`) evaluate spec expressions, and `schemas` is what both already depend on.
"""

from __future__ import annotations

import time
from numbers import Number
from typing import TYPE_CHECKING, Any, ClassVar

import jmespath
from jmespath.functions import Functions
from jmespath.visitor import Options, TreeInterpreter

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode

UNITS = 100_000
"""The default budget of one evaluation, in units: one AST node visited, or one value node (or 64
characters of a string) that an operation reads. Visiting is the slowest unit (about 0.4 microseconds), so
an evaluation stopped by it has held the event loop for some 40 ms; an ordinary condition costs
a few dozen units."""
SECONDS = 0.25
"""The default wall-clock backstop of one evaluation."""
CLOCK_EVERY = 4096
"""Units between two looks at the clock: often enough for the deadline, rare enough to cost nothing."""
CHARS_PER_UNIT_SHIFT = 6
"""A string costs one unit plus one per 64 characters (2**6): copying characters is C-speed work."""
SIZE_BLIND = frozenset({"length", "type", "not_null", "to_array"})
"""Functions that never look inside a list or an object they are given (O(1) in its size), so their
arguments are not measured. Every other function is charged the size of its arguments."""
_FUNCTIONS = Functions()
_OPTIONS = Options(custom_functions=_FUNCTIONS)


class BudgetExceeded(Exception):
    """Evaluating an expression cost more than its budget (units or time); the message says which."""


class Budget:
    """Units and a deadline, spent by the evaluations charged to it (one, or all those of a poll page)."""

    __slots__ = ("deadline", "units", "units_left")

    def __init__(self, units: int = UNITS, seconds: float = SECONDS) -> None:
        self.units = units
        self.units_left = units
        self.deadline = time.monotonic() + seconds


class BoundedExpression:
    """A compiled expression, evaluated within a budget."""

    __slots__ = ("_parsed", "expression")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._parsed = jmespath.compile(expression).parsed

    def search(self, data: Any, budget: Budget | None = None, *, sized: bool = False) -> Any:
        """The expression's value over `data`, as `jmespath.search` would give it.

        `sized` also charges the size of the result, for callers that serialize or iterate it
        (a result built from shared references can be far larger than anything evaluated).
        Raises `BudgetExceeded` when the budget is spent; an error of the expression on this data
        (JMESPathError, TypeError, ValueError) is raised as `jmespath` raises it.
        """
        interpreter = _BoundedInterpreter(budget if budget is not None else Budget())
        try:
            result = interpreter.visit(self._parsed, data)
            if sized:
                interpreter.charge(result)
        except RecursionError:  # a value nested deeper than Python compares or serializes
            raise BudgetExceeded("the data is nested too deeply for this expression") from None
        finally:
            interpreter.settle()
        return result

    def __repr__(self) -> str:
        return f"BoundedExpression({self.expression!r})"


class _BoundedInterpreter(TreeInterpreter):
    """`jmespath`'s interpreter, charging a budget for each node it visits and each operand it sizes."""

    _DISPATCH: ClassVar[dict[str, Any]]
    """visit_* by node type, looked up once per class rather than once per interpreter."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(_OPTIONS)
        self._budget = budget
        self._left = budget.units_left
        self._deadline = budget.deadline
        self._checkpoint = max(self._left - CLOCK_EVERY, 0)

    def settle(self) -> None:
        """Write what is left back to the budget (shared budgets carry it to the next evaluation)."""
        self._budget.units_left = self._left

    def spend(self, units: int) -> None:
        """Charge `units`; raise once the budget is spent or the deadline has passed."""
        self._left -= units
        if self._left <= self._checkpoint:
            self._check()

    def _check(self) -> None:
        if self._left < 0:
            raise BudgetExceeded(f"evaluation cost more than {self._budget.units} units")
        if time.monotonic() > self._deadline:
            raise BudgetExceeded("evaluation ran past its deadline")
        self._checkpoint = max(self._left - CLOCK_EVERY, 0)

    def charge(self, value: Any) -> None:
        """Charge the size of `value` (see `_size`), walking no further than the budget left."""
        kind = type(value)
        if kind is str:
            self.spend(1 + (len(value) >> CHARS_PER_UNIT_SHIFT))
        elif kind is list or kind is dict:
            self.spend(_size(value, self._left + 1))
        else:
            self.spend(1)

    def visit(self, node: _TreeNode, *args: Any, **kwargs: Any) -> Any:
        self._left -= 1
        if self._left <= self._checkpoint:
            self._check()
        return self._DISPATCH[node["type"]](self, node, *args, **kwargs)

    def visit_function_expression(self, node: _TreeNode, value: Any) -> Any:
        args = [self.visit(child, value) for child in node["children"]]
        name = node["value"]
        if name not in SIZE_BLIND:
            for arg in args:
                self.charge(arg)
            if name == "join" and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], list):
                self.spend(len(args[1]) * (len(args[0]) >> CHARS_PER_UNIT_SHIFT))  # the glue, once per element
        return _FUNCTIONS.call_function(name, args)

    def visit_comparator(self, node: _TreeNode, value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        operator = node["value"]
        if operator in ("eq", "ne"):
            self.charge(left)  # equality compares structures element by element
            self.charge(right)
        elif not (_orderable(left) and _orderable(right)):
            return None  # ordering anything but numbers and strings is null, as in jmespath
        return self.COMPARATOR_FUNC[operator](left, right)

    def visit_flatten(self, node: _TreeNode, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        self.spend(len(base))
        self.spend(sum(len(element) for element in base if isinstance(element, list)))
        merged: list[Any] = []
        for element in base:
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    def visit_slice(self, node: _TreeNode, value: Any) -> Any:
        if isinstance(value, list):
            bounds: list[Any] = node["children"]  # start, stop, step: ints or None
            self.spend(len(range(*slice(*bounds).indices(len(value)))))
        return super().visit_slice(node, value)


_BoundedInterpreter._DISPATCH = {
    name.removeprefix("visit_"): getattr(_BoundedInterpreter, name)
    for name in dir(_BoundedInterpreter)
    if name.startswith("visit_")
}


def _orderable(value: Any) -> bool:
    """What jmespath orders with `<`, `<=`, `>`, `>=`: numbers (not booleans) and strings."""
    return isinstance(value, str) or (isinstance(value, Number) and not isinstance(value, bool))


def _size(value: list[Any] | dict[str, Any], limit: int) -> int:
    """About the size of a value as serializing it would see it: a unit per node (each repetition of
    a shared one counted again) plus one per 64 characters of strings and keys. The walk stops once
    the size passes `limit`, so its own cost is bounded by the budget it measures against."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        current = stack.pop()
        total += 1 + len(current)
        if total > limit:
            return total
        if type(current) is dict:
            total += sum(len(key) for key in current) >> CHARS_PER_UNIT_SHIFT
            items = current.values()
        else:
            items = current
        for item in items:
            kind = type(item)
            if kind is str:
                total += len(item) >> CHARS_PER_UNIT_SHIFT
            elif kind is list or kind is dict:
                stack.append(item)
    return total
