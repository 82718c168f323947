"""Evaluating a connector's SLOs (`spec.slo`, schemas/slo.py) from the hub's own counts.

Inputs are what every instance shares: the per-minute counts in Valkey (hub/control/rates.py:
events accepted, requests refused, refusals answered 5xx) and the status's `lastSuccessAt` (the
last accepted webhook, or the last successful poll run). Each objective gives a value and whether
it is breached:

- freshness: seconds since the last success (or, when there was none, since the connector's
  certification began: a source that never sent anything is silent too); breached above the limit.
- errorRate: (refused + failed dispatches) / (accepted + refused) over the window; breached above `max`.
- availability: 1 - answered 5xx / (accepted + refused) over the window; breached below `min`.

A window with no request gives no value and no breach: quiet is the freshness objective's business.
The status keeps the objectives of the spec revision it describes next to the last results
(`SloStatus`), so any instance, the CLI and the API read both from the status alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from events.envelope import rfc3339
from hub.control.rates import MAX_WINDOW_MINUTES, Counts
from schemas.slo import Slo

Objective = Literal["freshness", "errorRate", "availability"]
OBJECTIVES: tuple[Objective, ...] = ("freshness", "errorRate", "availability")
HISTORY_MINUTES = MAX_WINDOW_MINUTES
"""How many minutes of counts an evaluation reads: the longest window an objective may have."""


@dataclass(frozen=True, slots=True)
class Result:
    """One objective's evaluation. `target` is seconds (freshness) or a share (the others); `value`
    is None when the window held no request."""

    objective: Objective
    target: float
    value: float | None
    breached: bool

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "target": self.target, "value": self.value, "breached": self.breached}

    @property
    def summary(self) -> str:
        """`freshness 301s (limit 300s) breached`, `errorRate 0.0123 (max 0.05) met`, `availability n/a (min 0.999)`."""
        bound = {"freshness": "limit", "errorRate": "max", "availability": "min"}[self.objective]
        if self.objective == "freshness":
            value, target = ("n/a" if self.value is None else f"{self.value:.0f}s"), f"{self.target:.0f}s"
        else:
            value, target = ("n/a" if self.value is None else f"{self.value:.4g}"), f"{self.target:g}"
        verdict = "" if self.value is None else (" breached" if self.breached else " met")
        return f"{self.objective} {value} ({bound} {target}){verdict}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result | None:
        """A stored result, or None when it is not one (an unknown objective reads as nothing)."""
        objective = data.get("objective")
        if objective not in OBJECTIVES:
            return None
        value = data.get("value")
        return cls(
            objective,
            float(data.get("target") or 0),
            None if value is None else float(value),
            bool(data.get("breached")),
        )


@dataclass(frozen=True, slots=True)
class SloStatus:
    """A status's SLO part: the objectives of its spec revision (as the spec writes them) and the
    last evaluation of them."""

    objectives: dict[str, Any]
    results: tuple[Result, ...] = ()
    evaluatedAt: str | None = None

    @property
    def slo(self) -> Slo:
        return Slo.model_validate(self.objectives)

    @property
    def breaches(self) -> tuple[Result, ...]:
        return tuple(result for result in self.results if result.breached)

    @property
    def summary(self) -> str:
        """One line: each result, or that none was evaluated yet."""
        if not self.results:
            return "not evaluated yet"
        return "; ".join(result.summary for result in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objectives": dict(self.objectives),
            "results": [result.to_dict() for result in self.results],
            "evaluatedAt": self.evaluatedAt,
        }

    @classmethod
    def from_dict(cls, data: Any) -> SloStatus | None:
        """A stored SLO part; None when absent or unreadable (a status page never fails on it)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("objectives"), Mapping):
            return None
        results = [Result.from_dict(r) for r in data.get("results") or () if isinstance(r, Mapping)]
        evaluated = data.get("evaluatedAt")
        return cls(
            dict(data["objectives"]),
            tuple(r for r in results if r is not None),
            evaluated if isinstance(evaluated, str) else None,
        )


def objectives_of(slo: Slo | None) -> dict[str, Any] | None:
    """The objectives as stored in a status (None: the spec sets none)."""
    if slo is None or slo.empty:
        return None
    return slo.model_dump(mode="json", exclude_none=True)


def counted_minutes(status: SloStatus | None) -> int:
    """How many minutes of counts a connector's objectives read: its longest window (0: none)."""
    if status is None:
        return 0
    try:
        slo = status.slo
    except ValidationError:
        return 0
    return max((o.minutes for o in (slo.errorRate, slo.availability) if o is not None), default=0)


def evaluate(
    slo: Slo, minutes: Sequence[Counts], *, last_success: float | None, quiet_since: float, now: float
) -> tuple[Result, ...]:
    """Each objective `slo` sets, from `minutes` (per-minute counts, oldest first, the current minute
    last) and the time of the last success (None: none yet; then quiet since `quiet_since`)."""
    results = []
    if slo.freshness is not None:
        limit = slo.freshness.total_seconds()
        age = max(0.0, now - (last_success if last_success is not None else quiet_since))
        results.append(Result("freshness", limit, round(age, 3), age > limit))
    if slo.errorRate is not None:
        window = sum(minutes[-slo.errorRate.minutes :], Counts())
        total = window.accepted + window.refused
        rate = min(1.0, (window.refused + window.failed) / total) if total else None
        results.append(Result("errorRate", slo.errorRate.max, rate, rate is not None and rate > slo.errorRate.max))
    if slo.availability is not None:
        window = sum(minutes[-slo.availability.minutes :], Counts())
        total = window.accepted + window.refused
        share = 1 - window.unavailable / total if total else None
        breached = share is not None and share < slo.availability.min
        results.append(Result("availability", slo.availability.min, share, breached))
    return tuple(results)


def evaluated(
    status: SloStatus, minutes: Sequence[Counts], *, last_success: float | None, quiet_since: float, now: float
) -> SloStatus:
    """`status` with fresh results (none when its stored objectives no longer read as an `Slo`)."""
    try:
        slo = status.slo
    except ValidationError:
        return SloStatus(status.objectives, (), rfc3339(now))
    results = evaluate(slo, minutes, last_success=last_success, quiet_since=quiet_since, now=now)
    return SloStatus(status.objectives, results, rfc3339(now))
