"""`check_replay_window` at its edges: a signed timestamp of 0 is a timestamp (the epoch, far too
old), not a missing one, and an age exactly equal to the window is inside it, on both sides of the
receiving clock, while the next millisecond out is refused."""

from __future__ import annotations

import pytest

from adapters.errors import ReplayWindowError
from hub.ingress.handler import check_replay_window

RECEIVED_AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z; every value below is exact in binary floating point
WINDOW_S = 300.0


def test_a_signed_timestamp_of_zero_is_refused_as_too_old() -> None:
    with pytest.raises(ReplayWindowError) as refused:
        check_replay_window(0.0, RECEIVED_AT, WINDOW_S)
    assert refused.value.reason == "timestamp_too_old"
    assert refused.value.age_s == RECEIVED_AT
    with pytest.raises(ReplayWindowError):
        check_replay_window(0, RECEIVED_AT, WINDOW_S)  # an int 0, as a parsed header can give


def test_no_signed_timestamp_is_not_checked() -> None:
    check_replay_window(None, RECEIVED_AT, WINDOW_S)


@pytest.mark.parametrize("side", [-1, 1], ids=["past", "future"])
def test_an_age_equal_to_the_window_is_accepted(side: int) -> None:
    signed_at = RECEIVED_AT + side * WINDOW_S
    assert abs(RECEIVED_AT - signed_at) == WINDOW_S  # exactly the window, no rounding either way
    check_replay_window(signed_at, RECEIVED_AT, WINDOW_S)


@pytest.mark.parametrize(
    ("side", "reason"), [(-1, "timestamp_too_old"), (1, "timestamp_in_future")], ids=["past", "future"]
)
def test_just_outside_the_window_is_refused(side: int, reason: str) -> None:
    signed_at = RECEIVED_AT + side * (WINDOW_S + 0.001)
    assert abs(RECEIVED_AT - signed_at) > WINDOW_S
    with pytest.raises(ReplayWindowError) as refused:
        check_replay_window(signed_at, RECEIVED_AT, WINDOW_S)
    assert refused.value.reason == reason
    assert refused.value.age_s == pytest.approx(-side * (WINDOW_S + 0.001))
    # ... and just inside it is accepted.
    check_replay_window(RECEIVED_AT + side * (WINDOW_S - 0.001), RECEIVED_AT, WINDOW_S)
