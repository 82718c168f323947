"""The status reporter's stop: it must end even when a change arrives in the same turn of the loop
as the stop (Python 3.11's `asyncio.wait_for` returns the result of a future that finished as its
task was cancelled, swallowing the cancellation, which left a stopping hub worker waiting for ever)."""

from __future__ import annotations

import asyncio

from hub.control.reporter import StatusReporter
from hub.control.status import ConnectorStatus, StatusChange, StatusStore
from hub.ingest.activity import Activity


class RecordingStore(StatusStore):
    """Records the changes instead of writing them to a bucket."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, StatusChange]] = []

    async def update(self, tenant: str, name: str, change: StatusChange) -> ConnectorStatus:
        self.writes.append((tenant, name, change))
        return ConnectorStatus(state="active")


def reporter(store: StatusStore) -> StatusReporter:
    return StatusReporter(store, Activity(), served=lambda: [], polled=lambda: [], poll_store=None)


async def stopped(status: StatusReporter) -> bool:
    """Whether `stop` ends within 5 s (waited for without cancelling it: a cancellation could be
    swallowed by the very bug this looks for)."""
    stopping = asyncio.ensure_future(status.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    return stopping in done


async def test_stop_ends_when_a_change_arrives_as_it_stops() -> None:
    store = RecordingStore()
    status = reporter(store)
    status.start()
    await asyncio.sleep(0)  # one turn: the reporter is now waiting for a change
    change = StatusChange(state="active")

    status.report("acme", "gh", change)
    assert await stopped(status)

    assert store.writes == [("acme", "gh", change)]  # written once, by the loop or by stop's drain


async def test_stop_writes_what_is_still_queued() -> None:
    store = RecordingStore()
    status = reporter(store)
    status.start()
    await asyncio.sleep(0)
    assert await stopped(status)  # nothing queued

    status.report("acme", "gh", StatusChange(state="disabled"))
    status.start()
    await asyncio.sleep(0)
    changes = [StatusChange(revision=n) for n in range(3)]
    for change in changes:
        status.report("acme", "gh", change)
    assert await stopped(status)

    assert [c for _, _, c in store.writes] == [StatusChange(state="disabled"), *changes]
