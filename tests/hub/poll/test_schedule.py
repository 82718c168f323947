"""When a poll source runs next after a success, and how hub failures count as source failures."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.pollers.base import SourceUnavailable
from hub.errors import PublishUnavailable
from hub.poll.scheduler import _as_source_error, next_scheduled
from schemas.poll import PollSettings


class Source:
    """Just what next_scheduled reads."""

    def __init__(self, **poll: Any) -> None:
        self.settings = PollSettings.model_validate(
            {"kind": "http_json", "request": {"url": "https://a.example/"}, **poll}
        )


def test_interval_counts_from_the_run_start_plus_at_most_the_jitter() -> None:
    source = Source(interval="10s", jitter="2s")
    started = time.time()
    nexts = [next_scheduled(source, started) for _ in range(200)]  # type: ignore[arg-type]
    assert all(started + 10 <= n <= started + 12 for n in nexts)
    assert max(nexts) - min(nexts) > 0.5  # the jitter spreads the runs


def test_without_jitter_the_interval_is_exact() -> None:
    started = 1_000_000.0
    assert next_scheduled(Source(interval="5m"), started) == started + 300  # type: ignore[arg-type]


def test_cron_gives_the_next_matching_minute_after_now() -> None:
    now = time.time()
    upcoming = next_scheduled(Source(cron="*/15 * * * *"), now)  # type: ignore[arg-type]
    moment = datetime.fromtimestamp(upcoming, UTC)
    assert moment.minute % 15 == 0
    assert moment.second == 0
    assert now < upcoming <= now + 15 * 60


@pytest.mark.parametrize(
    ("error", "reason", "retry_after"),
    [
        (PublishUnavailable("x"), "the event bus did not confirm the publish", None),
        (ConnectionError(), "poll store error: ConnectionError", None),
    ],
)
def test_hub_failures_are_transient_source_failures(error: Exception, reason: str, retry_after: float | None) -> None:
    converted = _as_source_error(error)
    assert isinstance(converted, SourceUnavailable)
    assert converted.transient
    assert (converted.reason, converted.retry_after_s) == (reason, retry_after)
