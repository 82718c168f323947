"""SLOs per connector (hub/control/slo.py): `spec.slo` validation, evaluation from the per-minute
counts a real valkey-server holds (RateStore fed directly), and a silent webhook source reported
breached by the status reporter once its quiet period has passed (time driven by an injected clock
of the status store: no sleeping)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import nats
import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from events.envelope import rfc3339
from hub.app.embedded import RunningServer
from hub.control.buckets import STATUS_BUCKET, kv_bucket
from hub.control.rates import Counts, RateStore
from hub.control.reporter import StatusReporter
from hub.control.slo import HISTORY_MINUTES, Result, SloStatus, counted_minutes, evaluate, objectives_of
from hub.control.status import ConnectorStatus, StatusChange, StatusStore
from hub.ingest.activity import Activity
from schemas.slo import Slo
from tests.conftest import wait_for

NOW = 1_800_000_000.0  # a minute boundary
MINUTE = 60.0
KEY = ("acme", "gh")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(valkey_server: RunningServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(valkey_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("slo", "field", "words"),
    [
        ({"freshness": "10s"}, ("freshness",), "between 1m and 30d"),
        ({"freshness": "31d"}, ("freshness",), "between 1m and 30d"),
        ({"errorRate": {"max": 1}}, ("errorRate", "max"), "less than 1"),
        ({"errorRate": {"max": -0.1}}, ("errorRate", "max"), "greater than or equal to 0"),
        ({"errorRate": {"max": 0.1, "window": "2h"}}, ("errorRate", "window"), "whole minutes from 1m to 1h"),
        ({"availability": {"min": 0}}, ("availability", "min"), "greater than 0"),
        ({"availability": {"min": 1.5}}, ("availability", "min"), "less than or equal to 1"),
        ({"availability": {"min": 0.9, "window": "90s"}}, ("availability", "window"), "whole minutes"),
        ({"latency": "1s"}, ("latency",), "Extra inputs are not permitted"),
    ],
)
def test_out_of_range_objectives_are_refused_naming_the_field(
    slo: dict[str, object], field: tuple[str, ...], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Slo.model_validate(slo)
    (error,) = caught.value.errors()
    assert error["loc"] == field
    assert words in error["msg"]


def test_objectives_are_stored_as_the_spec_writes_them() -> None:
    slo = Slo.model_validate(
        {"freshness": "30m", "errorRate": {"max": 0.05}, "availability": {"min": 0.999, "window": "5m"}}
    )
    assert objectives_of(slo) == {
        "freshness": "30m",
        "errorRate": {"max": 0.05, "window": "1h"},
        "availability": {"min": 0.999, "window": "5m"},
    }
    assert objectives_of(Slo()) is None
    assert objectives_of(None) is None
    assert Slo.model_validate(objectives_of(slo)) == slo


async def test_error_rate_and_availability_over_their_windows_from_valkey(redis: Redis) -> None:
    store = RateStore(redis)
    await store.add({KEY: Counts(accepted=90, refused=10, unavailable=2)}, at=NOW)  # this minute
    await store.add({KEY: Counts(accepted=100, refused=100, unavailable=50)}, at=NOW - 10 * MINUTE)  # outside 5m
    minutes = (await store.history([KEY], HISTORY_MINUTES, now=NOW))[KEY]
    assert len(minutes) == HISTORY_MINUTES

    slo = Slo.model_validate(
        {"errorRate": {"max": 0.05, "window": "5m"}, "availability": {"min": 0.95, "window": "5m"}}
    )
    assert evaluate(slo, minutes, last_success=NOW, quiet_since=NOW, now=NOW) == (
        Result("errorRate", 0.05, 0.1, True),  # 10 refused of 100
        Result("availability", 0.95, 0.98, False),  # 2 answered 5xx of 100
    )

    wide = Slo.model_validate(
        {"errorRate": {"max": 0.5, "window": "15m"}, "availability": {"min": 0.9, "window": "15m"}}
    )
    error_rate, availability = evaluate(wide, minutes, last_success=NOW, quiet_since=NOW, now=NOW)
    assert error_rate == Result("errorRate", 0.5, 110 / 300, False)
    assert availability == Result("availability", 0.9, 1 - 52 / 300, True)


async def test_failed_dispatches_count_in_the_error_rate(redis: Redis) -> None:
    """Refused requests and dead-lettered invocations are both errors of the connector."""
    store = RateStore(redis)
    await store.add({KEY: Counts(accepted=50, refused=0, failed=5)}, at=NOW)
    minutes = (await store.history([KEY], HISTORY_MINUTES, now=NOW))[KEY]
    slo = Slo.model_validate({"errorRate": {"max": 0.05, "window": "5m"}})
    assert evaluate(slo, minutes, last_success=NOW, quiet_since=NOW, now=NOW) == (Result("errorRate", 0.05, 0.1, True),)


async def test_a_window_without_requests_has_no_value_and_no_breach(redis: Redis) -> None:
    store = RateStore(redis)
    await store.add({KEY: Counts(accepted=0, refused=50, unavailable=50)}, at=NOW - 30 * MINUTE)
    minutes = (await store.history([KEY], HISTORY_MINUTES, now=NOW))[KEY]
    slo = Slo.model_validate(
        {"errorRate": {"max": 0.01, "window": "10m"}, "availability": {"min": 0.99, "window": "10m"}}
    )
    assert evaluate(slo, minutes, last_success=None, quiet_since=NOW, now=NOW) == (
        Result("errorRate", 0.01, None, False),
        Result("availability", 0.99, None, False),
    )


def test_freshness_is_the_age_of_the_last_success_or_of_the_quiet_start() -> None:
    slo = Slo.model_validate({"freshness": "5m"})
    assert evaluate(slo, [], last_success=NOW - 299, quiet_since=NOW - 9999, now=NOW) == (
        Result("freshness", 300.0, 299.0, False),
    )
    assert evaluate(slo, [], last_success=NOW - 301, quiet_since=NOW, now=NOW) == (
        Result("freshness", 300.0, 301.0, True),
    )
    # never a success: quiet since the certification began (the connector was created or changed)
    assert evaluate(slo, [], last_success=None, quiet_since=NOW - 600, now=NOW) == (
        Result("freshness", 300.0, 600.0, True),
    )


async def test_a_silent_webhook_source_is_reported_breached_after_its_quiet_period(
    nats_server: RunningServer, redis: Redis
) -> None:
    nc = await nats.connect(nats_server.url)
    clock = Clock(NOW)
    store = StatusStore(await kv_bucket(nc.jetstream(), STATUS_BUCKET), clock=clock)
    objectives = objectives_of(Slo(freshness=timedelta(minutes=5)))
    await store.update(*KEY, StatusChange(state="active", revision=1, slo=objectives))
    await store.update(*KEY, StatusChange(last_success_at=rfc3339(NOW)))  # its last webhook
    reporter = StatusReporter(
        store,
        Activity(),
        served=lambda: [KEY],
        polled=lambda: [],
        poll_store=None,
        rates=RateStore(redis),
        health_interval_s=0.05,
    )

    async def freshness(breached: bool) -> bool:
        status = await store.get(*KEY)
        assert status is not None
        results = status.slo.results if status.slo else ()
        return any(r.objective == "freshness" and r.breached is breached for r in results)

    reporter.start()
    try:
        clock.now = NOW + 4 * MINUTE  # quiet for 4 minutes: within its 5
        await wait_for(lambda: freshness(False), what="freshness evaluated, not breached")
        status = await store.get(*KEY)
        assert status is not None
        assert status.certification is not None
        assert status.certification.state == "monitoring"  # it has received a webhook since it was created

        clock.now = NOW + 5 * MINUTE + 1  # silent past its quiet period
        await wait_for(lambda: freshness(True), what="the silent source reported breached")

        status = await store.get(*KEY)
        assert isinstance(status, ConnectorStatus)
        assert isinstance(status.slo, SloStatus)
        (result,) = status.slo.breaches
        assert result.objective == "freshness"
        assert result.target == 300.0
        assert result.value is not None
        assert result.value > 300.0
        assert status.certification is not None
        assert status.certification.state == "failed"
        assert status.certification.breach is not None
        assert status.certification.breach.objective == "freshness"
    finally:
        await reporter.stop()
        await nc.close()


def test_a_reporter_reads_only_the_minutes_the_objectives_need() -> None:
    def of(slo: dict[str, object]) -> SloStatus:
        return SloStatus(slo)

    assert counted_minutes(None) == 0
    assert counted_minutes(of({"freshness": "5m"})) == 0  # freshness needs no counts
    assert (
        counted_minutes(of({"errorRate": {"max": 0.1, "window": "10m"}, "availability": {"min": 0.9, "window": "20m"}}))
        == 20
    )
    assert counted_minutes(of({"errorRate": {"max": 7}})) == 0  # stored objectives that no longer read: nothing
