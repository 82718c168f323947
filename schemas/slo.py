"""`spec.slo`: a connector's service level objectives (all optional).

    slo:
      freshness: 30m                          # poll: age of the last successful run; webhook: longest quiet period
      errorRate: {max: 0.05, window: 1h}      # refused requests over all requests, over the window
      availability: {min: 0.999, window: 1h}  # share of requests answered with something other than 5xx

The hub evaluates them from its own per-minute counts, which keep one hour: a window is whole
minutes from 1m to 1h.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.durations import Duration

MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(hours=1)
MIN_FRESHNESS = timedelta(minutes=1)
MAX_FRESHNESS = timedelta(days=30)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_window(window: timedelta) -> timedelta:
    if not MIN_WINDOW <= window <= MAX_WINDOW or window.total_seconds() % 60:
        raise ValueError("window must be whole minutes from 1m to 1h (the hub keeps an hour of per-minute counts)")
    return window


class ErrorRate(_Model):
    """At most `max` of the requests refused, over `window`."""

    max: float = Field(ge=0, lt=1, description="The largest acceptable share of refused requests, 0 to below 1")
    window: Duration = Field(default=MAX_WINDOW, description="Whole minutes, 1m to 1h")

    _window = field_validator("window")(_check_window)

    @property
    def minutes(self) -> int:
        return int(self.window.total_seconds() // 60)


class Availability(_Model):
    """At least `min` of the requests answered with something other than 5xx, over `window`."""

    min: float = Field(gt=0, le=1, description="The least acceptable share of requests not answered 5xx, above 0 to 1")
    window: Duration = Field(default=MAX_WINDOW, description="Whole minutes, 1m to 1h")

    _window = field_validator("window")(_check_window)

    @property
    def minutes(self) -> int:
        return int(self.window.total_seconds() // 60)


class Slo(_Model):
    """The objectives of one connector; each one left out is not evaluated."""

    freshness: Duration | None = Field(
        default=None,
        description="Poll: the longest acceptable age of the last successful run; webhook: the longest quiet "
        "period before the source counts as silent (1m to 30d)",
    )
    errorRate: ErrorRate | None = None
    availability: Availability | None = None

    @field_validator("freshness")
    @classmethod
    def _freshness(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not MIN_FRESHNESS <= value <= MAX_FRESHNESS:
            raise ValueError("freshness must be between 1m and 30d")
        return value

    @property
    def empty(self) -> bool:
        return self.freshness is None and self.errorRate is None and self.availability is None
