"""A connector's certification: whether it has run a healthy period without breaching its SLOs.

    pending ──first event or successful poll run──> monitoring ──HUB_CERTIFICATION_PERIOD, no breach──> certified
                                                        │                                                 │
                                                        └───────────── an SLO breached ──> failed <───────┘

`pending` after the connector is created and after every spec change (a new spec revision, applied
in `StatusChange.merged`, hub/control/status.py); `failed` keeps the breach that ended it (which
objective, when, its value and target) until the next spec change. A certified connector that
breaches an objective loses its certification the same way.

The store is the status bucket: the certification is a field of the connector's status, advanced by
each instance's status reporter inside the status's compare-and-set merge, so every instance agrees
and two reporters never move it twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from events.envelope import rfc3339
from hub.control.rates import Counts
from hub.control.slo import Result

CertificationState = Literal["pending", "monitoring", "certified", "failed"]
CERTIFICATION_STATES: tuple[CertificationState, ...] = ("pending", "monitoring", "certified", "failed")


@dataclass(frozen=True, slots=True)
class Breach:
    """The objective whose breach failed a certification, when, and the value it had."""

    objective: str
    at: str
    value: float | None
    target: float

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, "at": self.at, "value": self.value, "target": self.target}

    @classmethod
    def from_dict(cls, data: Any) -> Breach | None:
        if not isinstance(data, Mapping):
            return None
        value = data.get("value")
        return cls(
            str(data.get("objective")),
            str(data.get("at")),
            None if value is None else float(value),
            float(data.get("target") or 0),
        )


@dataclass(frozen=True, slots=True)
class Certification:
    """The state, since when, the spec revision it is for, and the breach of a failed one."""

    state: CertificationState
    since: str
    revision: int | None = None
    breach: Breach | None = None

    @property
    def summary(self) -> str:
        """`certified since <time> (revision 3)`; a failed one adds its breach."""
        text = f"{self.state} since {self.since}" + (f" (revision {self.revision})" if self.revision else "")
        if self.breach is not None:
            value = "n/a" if self.breach.value is None else f"{self.breach.value:.4g}"
            text += f": {self.breach.objective} was {value} against {self.breach.target:g} at {self.breach.at}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "revision": self.revision,
            "breach": self.breach.to_dict() if self.breach else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Certification | None:
        """A stored certification; None when absent or unreadable (the reporter starts it again)."""
        if not isinstance(data, Mapping) or data.get("state") not in CERTIFICATION_STATES:
            return None
        since = data.get("since")
        if not isinstance(since, str) or seconds_or_none(since) is None:
            return None
        revision = data.get("revision")
        return cls(
            data["state"], since, revision if isinstance(revision, int) else None, Breach.from_dict(data.get("breach"))
        )


def seconds_of(moment: str) -> float:
    """The Unix time of an RFC 3339 timestamp."""
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def seconds_or_none(moment: str | None) -> float | None:
    """The Unix time of a stored timestamp; None when there is none or it does not read as one."""
    try:
        return None if moment is None else seconds_of(moment)
    except ValueError:
        return None


def pending(revision: int | None, now: float) -> Certification:
    """A certification starting over: the connector was created or its spec changed."""
    return Certification("pending", rfc3339(now), revision)


def advance(
    certification: Certification,
    results: Sequence[Result],
    *,
    last_success: float | None,
    now: float,
    period_s: float,
) -> Certification:
    """The next state, given the latest SLO results and the time of the last success (one step)."""
    state = certification.state
    if state == "pending":
        if last_success is not None and last_success >= seconds_of(certification.since):
            return replace(certification, state="monitoring", since=rfc3339(now))
        return certification
    if state in ("monitoring", "certified"):
        breached = next((result for result in results if result.breached), None)
        if breached is not None:
            breach = Breach(breached.objective, rfc3339(now), breached.value, breached.target)
            return replace(certification, state="failed", since=rfc3339(now), breach=breach)
        if state == "monitoring" and now - seconds_of(certification.since) >= period_s:
            return replace(certification, state="certified", since=rfc3339(now))
    return certification


@dataclass(frozen=True, slots=True)
class Observation:
    """What a status reporter saw of a connector, for the status merge to evaluate its SLOs and
    advance its certification against the stored status: its per-minute counts (oldest first, the
    current minute last) and the certification period in force."""

    minutes: tuple[Counts, ...]
    period_s: float
