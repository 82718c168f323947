"""`run --workers 2`: one scrape of `/metrics` on the shared admin port answers for both workers.

A real supervisor with two workers (the fixtures of test_workers.py) on the real nats-server and
valkey-server; webhooks reach both workers (fresh connections until the kernel has given each worker
one), then the admin port is scraped on connections each worker accepted, so both answer.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from hub.app.embedded import RunningServer
from tests.conftest import wait_for
from tests.hub.app import test_workers as workers
from tests.hub.app.test_workers import (
    MAX_CONNECTIONS,
    WORKERS,
    Connection,
    Supervised,
    connection,
    pid_gone,
    post_until_served_by,
)
from tests.hub.ingress.signing import GITHUB, TENANT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

start = workers.start
ingress = workers.ingress
"""The supervisor fixtures of test_workers.py: two workers with the ingress role on the fixtures' servers."""

ACCEPTED = {"tenant": TENANT, "connector": GITHUB.connector, "outcome": "accepted"}


async def scrape_on(conn: Connection) -> list[Sample]:
    """GET /metrics on this very connection (its worker answers); every sample."""
    conn.writer.write(b"GET /metrics HTTP/1.1\r\nHost: hub.test\r\nConnection: close\r\n\r\n")
    await conn.writer.drain()
    response = await conn.reader.read()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", head
    return [sample for family in text_string_to_metric_families(body.decode()) for sample in family.samples]


async def scrape_each_worker(supervised: Supervised) -> dict[int, list[Sample]]:
    """Scrape the shared admin port until every worker has answered once: its samples, by worker PID."""
    record = supervised.record()
    assert record is not None
    pids = list(record["worker_pids"])
    answers: dict[int, list[Sample]] = {}
    for _ in range(MAX_CONNECTIONS):
        async with connection(str(record["admin_url"]), pids) as conn:
            if conn.worker not in answers:
                answers[conn.worker] = await scrape_on(conn)
        if len(answers) == len(pids):
            return answers
    pytest.fail(f"{MAX_CONNECTIONS} connections to the admin port never reached {set(pids) - set(answers)}")


def value(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The one sample named `name` whose labels include `labels`."""
    (found,) = [s for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found.value


async def test_one_scrape_sums_the_counters_of_both_workers(ingress: Supervised, nats_server: RunningServer) -> None:
    pids = ingress.worker_pids()
    accepted = await post_until_served_by(ingress, set(pids))
    assert {*accepted.values()} == set(pids)  # each worker accepted some: a per-worker answer would fall short

    answers = await scrape_each_worker(ingress)

    assert set(answers) == set(pids)
    for samples in answers.values():
        assert value(samples, "hub_ingest_requests_total", **ACCEPTED) == len(accepted)
        assert value(samples, "hub_events_published_total", tenant=TENANT) == len(accepted)
        assert value(samples, "hub_ingest_latency_seconds_count", outcome="accepted") == len(accepted)
        assert value(samples, "hub_connectors") == 1  # a function gauge: the answering worker's own
        for pid in pids:  # a gauge per worker
            assert value(samples, "hub_dedupe_store_available", pid=str(pid)) == 1


async def test_a_restarted_worker_keeps_its_counts_and_drops_its_gauges(ingress: Supervised) -> None:
    pids = ingress.worker_pids()
    accepted = await post_until_served_by(ingress, set(pids))
    killed = pids[0]
    os.kill(killed, signal.SIGKILL)

    async def replaced() -> bool:
        ingress.alive()
        now = ingress.worker_pids()
        return pid_gone(killed) and len(now) == WORKERS and killed not in now

    await wait_for(replaced, 60, "the killed worker replaced")

    for samples in (await scrape_each_worker(ingress)).values():
        assert value(samples, "hub_ingest_requests_total", **ACCEPTED) == len(accepted)
        gauge_pids = {s.labels["pid"] for s in samples if s.name == "hub_dedupe_store_available"}
        assert gauge_pids == {str(pid) for pid in ingress.worker_pids()}
