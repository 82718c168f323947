"""Two `connector-hub run --role poller` processes with the same poll connector: the lease in Valkey
lets one run at a time, and when its holder dies the other takes over once the lease expires."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.app.connections import connect_redis
from hub.app.embedded import RunningServer
from hub.poll.scheduler import recovery_bound_note
from tests.hub.gate.harness import HubProcess, hub_log, hub_metric, start_hub_process, until
from tests.hub.poll.sources import LOOPBACK, cursor_pages, poll_connector, poll_source, slow, specs_yaml

pytestmark = pytest.mark.integration

LEASE_TTL_S = 2.0
INTERVAL_S = 1.5
REQUEST_S = 0.3
"""Every request of the source takes this long; a run is two of them, so overlapping runs would show."""
LEASE_KEY = "poll:acme:api:lease"


@pytest.fixture
def processes() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts; each is stopped by its PID at teardown."""
    started: list[HubProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def holder_pid(lease: bytes | str | None) -> int | None:
    """The PID in a lease value (`<host>:<pid>:<token>`)."""
    if lease is None:
        return None
    text = lease.decode() if isinstance(lease, bytes) else lease
    return int(text.rsplit(":", 2)[1])


async def test_one_run_at_a_time_and_takeover_after_the_holder_dies(
    nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path, processes: list[HubProcess]
) -> None:
    items = [{"id": n} for n in range(1, 7)]
    async with poll_source(delay_s=REQUEST_S) as source:
        pages = cursor_pages(lambda: items, page_size=3)
        source.route("/items", pages)
        poll = {
            "kind": "http_json",
            "interval": f"{INTERVAL_S}s",
            "request": {"url": source.url("/items")},  # every run pages from the start: 2 requests
            "items": {"path": "items", "id": "id"},
            "pagination": {"nextLink": "next"},
            "egress": LOOPBACK,
        }
        specs = tmp_path / "specs.yaml"
        specs.write_text(specs_yaml(poll_connector("api", poll)))
        for n in range(2):
            processes.append(
                start_hub_process(
                    specs,
                    nats_server.url,
                    valkey_server.url,
                    tmp_path / f"hub-{n}",
                    roles="poller",
                    env={"HUB_POLL_LEASE_TTL": f"{LEASE_TTL_S}s"},
                )
            )

        def started() -> bool:
            for process in processes:
                if process.proc.poll() is not None:
                    raise AssertionError(f"hub exited with {process.proc.returncode}:\n{hub_log(process)[-4000:]}")
            return all("listening" in hub_log(p) for p in processes)

        await until(started, 20, "both hub processes listening")
        await until(lambda: len(source.requests) >= 6, 15, "three runs")

        # One run outlasts the lease: its holder renews it, so the other process still waits.
        source.queue("/items", slow(pages, LEASE_TTL_S + 0.5))
        long_request = len(source.requests)
        await until(
            lambda: len(source.requests) > long_request and source.requests[long_request].answered_at > 0,
            LEASE_TTL_S + 5,
            "the long request answered",
        )
        assert source.requests[long_request].answered_at - source.requests[long_request].at >= LEASE_TTL_S
        assert source.max_concurrent == 1

        redis = connect_redis(valkey_server.url, 2.0)
        try:
            # Kill the holder early in a run (its first page in flight, the second to come), so that it
            # still holds the lease when it dies: the lease names it.
            lease: list[bytes | str | None] = [None]

            async def mid_run() -> bool:
                last = source.requests[-1]
                first_page_in_flight = last.answered_at == 0 and "after" not in last.query
                if not first_page_in_flight or time.monotonic() - last.at > REQUEST_S / 2:
                    return False
                lease[0] = await redis.get(LEASE_KEY)
                return lease[0] is not None

            await until(mid_run, 5, "a run in progress")
            pids = {p.proc.pid: p for p in processes}
            pid = holder_pid(lease[0])
            assert pid in pids, (lease[0], list(pids))
            holder = pids.pop(pid)
            (survivor,) = pids.values()
            survivor_runs = await hub_metric(survivor, "hub_poll_runs_total", {"connector": "api", "outcome": "ok"})
            holder.kill()  # SIGKILL: no release, the lease stays until it expires
            killed_at = time.monotonic()
            seen_before_kill = len(source.requests)

            await until(lambda: len(source.requests) > seen_before_kill, LEASE_TTL_S + 3, "a request from the survivor")
            takeover_s = source.requests[seen_before_kill].at - killed_at
            # Not before the lease expired (renewed every TTL/3, so at least 2/3 of it was left) ...
            assert takeover_s >= LEASE_TTL_S * 2 / 3 - 0.1, takeover_s
            # ... and soon after it did.
            assert takeover_s <= LEASE_TTL_S + 1.0, takeover_s

            async def survivor_ran() -> bool:
                ok = await hub_metric(survivor, "hub_poll_runs_total", {"connector": "api", "outcome": "ok"})
                return ok > survivor_runs

            await until(survivor_ran, 10, "a whole run by the survivor")
            assert holder_pid(await redis.get(LEASE_KEY)) in (None, survivor.proc.pid)
        finally:
            await redis.aclose()

        assert source.max_concurrent == 1  # never two runs (nor two requests) at once
        # Nor one schedule slot run twice: a run starts (a request without `after`) an interval after
        # the one before, whichever process ran either (the killed run's slot is re-run, so not across it).
        starts = [r.at for r in source.requests if "after" not in r.query]
        before = [t for t in starts if t < killed_at]
        after = [t for t in starts if t > killed_at]
        assert len(before) >= 3, before
        for group in (before, after):
            gaps = [b - a for a, b in itertools.pairwise(group)]
            # Measured where the source sees the first request, which the load on the machine can delay
            # for one run and not the next; a slot run twice would start right after the run before.
            assert all(gap >= INTERVAL_S - 0.5 for gap in gaps), gaps
        assert survivor.proc.poll() is None
        assert all(r.status == 200 for r in source.requests if r.answered_at)


def test_a_claim_ttl_longer_than_the_lease_is_reported_with_the_recovery_bound_it_gives() -> None:
    assert recovery_bound_note(30.0, 30.0) is None
    assert recovery_bound_note(30.0, 10.0) is None
    note = recovery_bound_note(10.0, 30.0)
    assert note is not None
    assert "HUB_CLAIM_TTL (30s)" in note
    assert "HUB_POLL_LEASE_TTL (10s)" in note
    assert "up to 40s" in note
