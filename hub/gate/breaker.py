"""Per-target circuit breakers: stop hammering a target that keeps failing, then probe it.

In-process on purpose: each hub process protects the target from its own traffic, so no shared
state (and no Valkey round trip) sits on the dispatch path. The caller asks `check()` before a
delivery attempt and reports the outcome; while the breaker is open it delays the message by the
returned seconds instead of calling the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from schemas.connector import Target

PROBE_WAIT_S = 0.25
"""How long others wait while a half-open probe is out (at most the cooldown)."""


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed → (threshold consecutive failures) → open → (cooldown) → half-open → one probe.

    The probe's success closes the breaker; its failure re-opens it for another cooldown. A probe
    whose result never comes back (the caller crashed or lost the message) does not wedge the
    breaker: after a cooldown without a result, the next `check()` lets another probe go.
    """

    def __init__(
        self, failure_threshold: int, cooldown_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.failure_threshold, self.cooldown_s = _checked(failure_threshold, cooldown_s)
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0
        self.trips = 0
        """Times the breaker opened (from closed or from a failed probe): a counter for metrics."""

    @property
    def state(self) -> BreakerState:
        """The state as of the last call; an expired cooldown shows as OPEN until `check()`."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    def configure(self, failure_threshold: int, cooldown_s: float) -> None:
        """Apply changed settings (a reloaded route) without forgetting the current state."""
        self.failure_threshold, self.cooldown_s = _checked(failure_threshold, cooldown_s)

    def check(self) -> float:
        """0.0 when a call may go now, else the seconds to wait before asking again."""
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            return 0.0
        if self._state is BreakerState.OPEN:
            remaining = self._opened_at + self.cooldown_s - now
            if remaining > 0:
                return remaining
            self._state = BreakerState.HALF_OPEN
            self._probe_at = now
            return 0.0
        probe_deadline = self._probe_at + self.cooldown_s
        if now >= probe_deadline:  # the probe's result is lost: let another one go
            self._probe_at = now
            return 0.0
        return min(PROBE_WAIT_S, probe_deadline - now)

    def record_success(self) -> None:
        """A call succeeded: the target works, so close (also from open: a late success counts)."""
        self._state = BreakerState.CLOSED
        self._failures = 0

    def record_failure(self) -> None:
        """A call failed in a way that says the target is unwell (timeout, connection, 5xx)."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold
        ):
            self._open()
        # Already open: a late failure of a call sent before it opened changes nothing.

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self.trips += 1


def _checked(failure_threshold: int, cooldown_s: float) -> tuple[int, float]:
    if failure_threshold < 1:
        raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
    if cooldown_s < 0:
        raise ValueError(f"cooldown_s cannot be negative, got {cooldown_s}")
    return failure_threshold, cooldown_s


class Breakers:
    """One breaker per target key, created on first use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def states(self) -> dict[str, BreakerState]:
        """Every target's breaker state in this process, by target key (`target_key`)."""
        return {key: breaker.state for key, breaker in self._breakers.items()}

    def get(self, key: str, failure_threshold: int, cooldown_s: float) -> CircuitBreaker:
        """The breaker of `key`; settings that changed since the last call are applied to it."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(failure_threshold, cooldown_s, clock=self._clock)
        elif (breaker.failure_threshold, breaker.cooldown_s) != (failure_threshold, cooldown_s):
            breaker.configure(failure_threshold, cooldown_s)
        return breaker


def target_key(target: Target) -> str:
    """What one breaker protects: a subject, or an HTTP origin (scheme, host and port)."""
    if target.http is None:
        return target.label
    url = target.http.url
    return f"http:{url.scheme}://{url.host}:{url.port}"
