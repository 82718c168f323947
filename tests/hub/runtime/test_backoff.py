"""Backoff delays and Retry-After parsing (pure functions, shared by the gate and the poller)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.runtime.backoff import backoff_delay, parse_retry_after

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def http_date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


def test_the_delay_doubles_from_initial_up_to_the_cap() -> None:
    delays = [backoff_delay(attempt, 1.0, 20.0, jitter=False) for attempt in range(1, 8)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


@pytest.mark.parametrize("attempt", [1024, 1025, 10**6, 10**18])
def test_a_huge_attempt_is_the_cap_not_an_overflow(attempt: int) -> None:
    assert backoff_delay(attempt, 1.0, 300.0, jitter=False) == 300.0
    assert backoff_delay(attempt, 1e300, 300.0, jitter=False) == 300.0


def test_equal_jitter_spans_half_to_all_of_the_delay() -> None:
    assert backoff_delay(3, 1.0, 60.0, rng=lambda: 0.0) == 2.0
    assert backoff_delay(3, 1.0, 60.0, rng=lambda: 0.5) == 3.0
    assert backoff_delay(3, 1.0, 60.0, rng=lambda: 0.999999) == pytest.approx(4.0)
    assert backoff_delay(50, 1.0, 60.0, rng=lambda: 0.0) == 30.0  # jitter applies below the cap too


@given(attempt=st.integers(1, 200), initial=st.floats(0.0, 100.0), cap=st.floats(0.0, 3600.0))
def test_a_jittered_delay_is_within_half_and_the_full_delay(attempt: int, initial: float, cap: float) -> None:
    full = backoff_delay(attempt, initial, cap, jitter=False)

    jittered = backoff_delay(attempt, initial, cap)

    assert full <= cap
    assert full / 2 <= jittered <= full


@pytest.mark.parametrize(("attempt", "initial", "cap"), [(0, 1.0, 1.0), (-1, 1.0, 1.0), (1, -1.0, 1.0)])
def test_nonsense_arguments_are_refused(attempt: int, initial: float, cap: float) -> None:
    with pytest.raises(ValueError, match=r"attempt|negative"):
        backoff_delay(attempt, initial, cap)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("86400", 3600.0),
        ("9" * 400, 3600.0),
    ],
)
def test_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_an_http_date_is_counted_from_now() -> None:
    assert parse_retry_after(http_date(NOW + 90), now=NOW) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 12:02:00 GMT", now=NOW) == 120.0
    assert parse_retry_after("Wednesday, 01-May-24 12:00:30 GMT", now=NOW) == 30.0  # RFC 850, obsolete but valid


def test_a_date_in_the_past_means_now_and_a_far_one_is_capped() -> None:
    assert parse_retry_after(http_date(NOW - 600), now=NOW) == 0.0
    assert parse_retry_after(http_date(NOW + 7 * 86400), now=NOW) == 3600.0
    assert parse_retry_after(http_date(NOW + 7 * 86400), now=NOW, cap_s=10.0) == 10.0


def test_the_clock_is_used_when_no_now_is_given() -> None:
    assert parse_retry_after(http_date(datetime.now(UTC).timestamp() + 1000)) == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "1e3", "inf", "nan", "0x10", "7 seconds", "32 Foo 2024"])
def test_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None
