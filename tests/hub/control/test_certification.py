"""Certification per connector (hub/control/certification.py): the state machine on its own, then
on a real bus and a real valkey-server through the admin API: pending after the apply, monitoring
after the first webhook, certified after a healthy period, failed on an SLO breach (with the breach
kept), pending again after a spec change; the status endpoint and the signed service map carry it.
Time is the status store's injected clock, moved by the test (no sleeping)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from events.envelope import rfc3339
from hub.control.buckets import STATUS_BUCKET, kv_bucket
from hub.control.certification import (
    Breach,
    Certification,
    Observation,
    advance,
    pending,
    seconds_of,
    seconds_or_none,
)
from hub.control.plane import Actor
from hub.control.rates import Counts, RateStore
from hub.control.reporter import StatusReporter
from hub.control.servicemap import verify_service_map
from hub.control.slo import Result, SloStatus
from hub.control.status import ConnectorStatus, StatusChange, StatusStore
from hub.ingest.activity import Activity
from schemas.connector import ConnectorDocument
from tests.conftest import wait_for
from tests.hub.console.conftest import ConsoleUnderTest
from tests.hub.console.conftest import console as console_under_test
from tests.hub.control.fixtures import SIGNING_KEY, ControlUnderTest, webhook_connector

NOW = 1_800_000_000.0
PERIOD_S = 3600.0
KEY = ("a", "gh")
STORE_SECRET = [{"secretRef": {"source": "store", "name": "gh-secret"}}]
BREACH = Result("errorRate", 0.05, 0.5, True)
MET = Result("errorRate", 0.05, 0.01, False)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def step(
    certification: Certification, results: tuple[Result, ...], last_success: float | None, at: float
) -> Certification:
    return advance(certification, results, last_success=last_success, now=at, period_s=PERIOD_S)


def test_pending_waits_for_a_first_success_after_it_began() -> None:
    start = pending(3, NOW)
    assert start == Certification("pending", "2027-01-15T08:00:00.000Z", 3)
    assert step(start, (BREACH,), None, NOW + 10) == start  # nothing ran yet: a breach does not fail it
    assert step(start, (), NOW - 1, NOW + 10) == start  # a success before the spec change does not count
    monitoring = step(start, (), NOW + 5, NOW + 10)
    assert (monitoring.state, seconds_of(monitoring.since), monitoring.revision) == ("monitoring", NOW + 10, 3)


def test_monitoring_is_certified_after_a_healthy_period_and_fails_on_a_breach() -> None:
    monitoring = Certification("monitoring", "2027-01-15T08:00:00.000Z", 3)
    assert step(monitoring, (MET,), NOW, NOW + PERIOD_S - 1) == monitoring
    certified = step(monitoring, (MET,), NOW, NOW + PERIOD_S)
    assert certified.state == "certified"
    assert seconds_of(certified.since) == NOW + PERIOD_S

    for running in (monitoring, certified):
        failed = step(running, (MET, BREACH), NOW, NOW + 7)
        assert failed.state == "failed"
        assert failed.revision == 3
        assert failed.breach == Breach("errorRate", "2027-01-15T08:00:07.000Z", 0.5, 0.05)
        assert step(failed, (MET,), NOW, NOW + 2 * PERIOD_S) == failed  # only a spec change starts it over


def test_a_stored_certification_reads_back_and_an_unreadable_one_reads_as_none() -> None:
    failed = Certification(
        "failed", "2027-01-15T08:00:07.000Z", 3, Breach("freshness", "2027-01-15T08:00:07.000Z", 301.0, 300.0)
    )
    assert Certification.from_dict(failed.to_dict()) == failed
    assert Certification.from_dict({"state": "blessed", "since": "x"}) is None
    assert Certification.from_dict(None) is None


def connector(**spec: Any) -> dict[str, Any]:
    return webhook_connector(*KEY, STORE_SECRET, **spec)


async def test_pending_monitoring_certified_failed_and_pending_again_after_a_spec_change(
    control: ControlUnderTest, redis_url: str
) -> None:
    await control.plane.secrets.set("a", "gh-secret", b"signing secret")
    api, key = control.api, control.keys["a"]
    slo = {"errorRate": {"max": 0.1, "window": "5m"}, "availability": {"min": 0.9, "window": "5m"}}
    reply = await api.call("PUT", "/v1/connectors/a/gh", key, connector(slo=slo))
    assert reply.status == 201, reply.body
    revision = reply.json()["revision"]

    status = (await api.call("GET", "/v1/connectors/a/gh/status", key)).json()
    assert status["certification"]["state"] == "pending"
    assert status["certification"]["revision"] == revision
    assert status["slo"]["objectives"] == {
        "errorRate": {"max": 0.1, "window": "5m"},
        "availability": {"min": 0.9, "window": "5m"},
    }

    clock = Clock(time.time())
    redis = Redis.from_url(redis_url)
    activity = Activity()
    store = StatusStore(await kv_bucket(control.nc.jetstream(), STATUS_BUCKET), clock=clock)
    reporter = StatusReporter(
        store,
        activity,
        served=lambda: [KEY],
        polled=lambda: [],
        poll_store=None,
        rates=RateStore(redis),
        certification_period_s=PERIOD_S,
        health_interval_s=0.05,
    )

    async def certification(state: str) -> bool:
        reply = await api.call("GET", "/v1/connectors/a/gh/status", key)
        return bool(reply.json()["certification"]["state"] == state)

    async def mapped() -> dict[str, Any]:
        reply = await api.call("GET", "/v1/connectors/service-map", key)
        (entry,) = verify_service_map(reply.body, SIGNING_KEY)["connectors"]
        return dict(entry)

    reporter.start()
    try:
        assert (await mapped())["certification"] == "pending"
        clock.now = time.time() + 1
        activity.succeeded(*KEY)  # its first webhook
        activity.accepted(*KEY, 1)
        await wait_for(lambda: certification("monitoring"), what="monitoring after the first webhook")
        assert (await mapped())["certification"] == "monitoring"

        clock.now += PERIOD_S  # a healthy period later
        await wait_for(lambda: certification("certified"), what="certified after the period")
        assert (await mapped())["certification"] == "certified"

        await RateStore(redis).add({KEY: Counts(accepted=10, refused=10)})  # with the first: 10 refused of 21
        await wait_for(lambda: certification("failed"), what="failed on the error-rate breach")
        status = (await api.call("GET", "/v1/connectors/a/gh/status", key)).json()
        breach = status["certification"]["breach"]
        assert (breach["objective"], breach["value"], breach["target"]) == ("errorRate", 10 / 21, 0.1)
        assert seconds_of(breach["at"]) == pytest.approx(clock.now, abs=0.001)
        assert {r["objective"]: r["breached"] for r in status["slo"]["results"]} == {
            "errorRate": True,
            "availability": False,  # refusals, none answered 5xx
        }
        assert (await mapped())["certification"] == "failed"

        looser = {"errorRate": {"max": 0.6, "window": "5m"}}
        reply = await api.call(
            "PUT",
            "/v1/connectors/a/gh",
            key,
            connector(slo=looser) | {"metadata": {"name": "gh", "tenant": "a", "revision": revision}},
        )
        assert reply.status == 200, reply.body
        status = (await api.call("GET", "/v1/connectors/a/gh/status", key)).json()
        assert status["certification"]["state"] == "pending"
        assert status["certification"]["breach"] is None
        assert status["certification"]["revision"] == reply.json()["revision"] > revision
        assert status["slo"]["objectives"] == {"errorRate": {"max": 0.6, "window": "5m"}}
        assert (await mapped())["certification"] == "pending"
    finally:
        await reporter.stop()
        await redis.aclose()


async def test_another_tenant_sees_neither_the_status_nor_the_certification(control: ControlUnderTest) -> None:
    await control.plane.secrets.set("a", "gh-secret", b"signing secret")
    reply = await control.api.call("PUT", "/v1/connectors/a/gh", control.keys["a"], connector(slo={"freshness": "1h"}))
    assert reply.status == 201, reply.body
    theirs = await control.api.call("GET", "/v1/connectors/a/gh/status", control.keys["b"])
    missing = await control.api.call("GET", "/v1/connectors/a/nope/status", control.keys["a"])
    assert theirs.status == missing.status == 404
    assert {k: v for k, v in theirs.json().items() if k != "requestId"} == {
        k: v for k, v in missing.json().items() if k != "requestId"
    }
    assert theirs.json()["code"] == "not_found"
    assert "certification" not in theirs.body.decode()


console = console_under_test
"""The console fixture (tests/hub/console/conftest.py), for the page test below."""


async def test_the_console_connector_page_shows_the_slos_and_the_certification(console: ConsoleUnderTest) -> None:
    slo = {"freshness": "1m", "errorRate": {"max": 0.05, "window": "5m"}}
    document = webhook_connector(*KEY, STORE_SECRET, slo=slo)
    await console.plane.apply(ConnectorDocument.model_validate(document), Actor("test"))
    quiet = StatusChange(last_success_at=rfc3339(time.time() - 120), observation=Observation((), PERIOD_S))
    await console.plane.statuses.update(*KEY, quiet)  # its last webhook two minutes ago: silent past 1m

    await console.browser.sign_in(console.keys["a"])
    page = await console.browser.get("/console/connectors/a/gh/status")
    assert page.status == 200, page.text
    assert '<dt>Certification</dt><dd><span class="pill pill-pending">pending</span> since ' in page.text
    rows = re.findall(r"<tr><td>(\w+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page.text)
    assert [(objective, verdict) for objective, _, verdict in rows] == [
        ("freshness", "breached"),
        ("errorRate", "no requests"),
    ]
    assert rows[0][1].startswith("12")
    assert rows[0][1].endswith("s (limit 60s) breached")
    full = await console.browser.get("/console/connectors/a/gh")
    assert "Service level objectives" in full.text


def test_a_malformed_stored_time_reads_as_none_and_never_breaks_a_merge() -> None:
    assert seconds_or_none("yesterday") is None
    assert seconds_or_none(None) is None
    assert Certification.from_dict({"state": "pending", "since": "yesterday"}) is None
    status = ConnectorStatus(state="active", revision=2, lastSuccessAt="garbage", slo=SloStatus({"freshness": "1m"}))
    merged = StatusChange(observation=Observation((), PERIOD_S)).merged(status, NOW)
    assert merged.certification == pending(2, NOW)  # started, no success to count
    assert merged.slo is not None
    assert merged.slo.results == (Result("freshness", 60.0, 0.0, False),)  # quiet since it started
