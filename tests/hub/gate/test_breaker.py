"""Circuit breaker transitions, driven by a fake clock."""

from __future__ import annotations

import pytest

from hub.gate.breaker import PROBE_WAIT_S, Breakers, BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def tripped(clock: FakeClock, threshold: int = 3, cooldown: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, cooldown, clock=clock)
    for _ in range(threshold):
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_closed_lets_calls_go_and_counts_consecutive_failures_only(clock: FakeClock) -> None:
    breaker = CircuitBreaker(3, 30.0, clock=clock)

    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.check() == 0.0
    assert (breaker.failures, breaker.trips) == (2, 0)


def test_the_threshold_opens_it_and_check_tells_the_remaining_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock)

    assert breaker.trips == 1
    assert breaker.check() == 30.0
    clock.advance(12.5)
    assert breaker.check() == 17.5
    assert breaker.state is BreakerState.OPEN


def test_a_late_failure_while_open_neither_extends_nor_retrips(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(10.0)

    breaker.record_failure()

    assert breaker.check() == 20.0
    assert breaker.trips == 1


def test_after_the_cooldown_one_probe_goes_and_the_others_wait(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(30.0)

    assert breaker.check() == 0.0  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.check() == PROBE_WAIT_S
    clock.advance(5.0)
    assert breaker.check() == PROBE_WAIT_S


def test_the_probe_wait_is_never_longer_than_a_short_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock, cooldown=0.2)
    clock.advance(0.2)
    assert breaker.check() == 0.0

    assert breaker.check() == pytest.approx(0.2)
    clock.advance(0.15)
    assert breaker.check() == pytest.approx(0.05)  # no longer than until the next probe is due


def test_a_successful_probe_closes_and_resets(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(30.0)
    breaker.check()

    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures == 0
    assert breaker.check() == 0.0
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # the count starts over


def test_a_failed_probe_reopens_for_another_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(31.0)
    breaker.check()
    clock.advance(2.0)

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert breaker.trips == 2
    assert breaker.check() == 30.0


def test_a_lost_probe_lets_another_one_go_after_a_cooldown(clock: FakeClock) -> None:
    breaker = tripped(clock)
    clock.advance(30.0)
    assert breaker.check() == 0.0
    clock.advance(29.0)
    assert breaker.check() == PROBE_WAIT_S

    clock.advance(1.0)

    assert breaker.check() == 0.0  # a second probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.check() == PROBE_WAIT_S


def test_a_late_success_while_open_closes(clock: FakeClock) -> None:
    breaker = tripped(clock)

    breaker.record_success()

    assert breaker.state is BreakerState.CLOSED
    assert breaker.check() == 0.0


def test_a_threshold_of_one_opens_on_the_first_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker(1, 5.0, clock=clock)

    breaker.record_failure()

    assert breaker.state is BreakerState.OPEN
    assert breaker.check() == 5.0


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, -1.0)])
def test_nonsense_settings_are_refused(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match=r"failure_threshold|cooldown_s"):
        CircuitBreaker(threshold, cooldown)


def test_breakers_are_per_key_and_created_on_first_use(clock: FakeClock) -> None:
    breakers = Breakers(clock)
    a = breakers.get("http://a", 1, 10.0)

    a.record_failure()

    assert breakers.get("http://a", 1, 10.0) is a
    assert breakers.get("http://b", 1, 10.0) is not a
    assert (a.state, breakers.get("http://b", 1, 10.0).state) == (BreakerState.OPEN, BreakerState.CLOSED)
    clock.advance(10.0)
    assert a.check() == 0.0  # the shared clock drives every breaker
    assert breakers.get("http://a", 1, 10.0).state is BreakerState.HALF_OPEN


def test_changed_settings_apply_to_the_existing_breaker(clock: FakeClock) -> None:
    breakers = Breakers(clock)
    breaker = breakers.get("t", 5, 10.0)
    breaker.record_failure()

    again = breakers.get("t", 2, 60.0)
    again.record_failure()

    assert again is breaker
    assert (breaker.state, breaker.cooldown_s) == (BreakerState.OPEN, 60.0)
    assert breaker.check() == 60.0
    with pytest.raises(ValueError, match="failure_threshold"):
        breakers.get("t", 0, 60.0)
    assert breaker.failure_threshold == 2  # a refused change leaves it as it was
