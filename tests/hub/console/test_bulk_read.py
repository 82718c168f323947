"""The streamed listing read equals the control plane's per-key reads (deleted connectors left out)."""

from __future__ import annotations

from hub.control.bulk_read import connectors_with_statuses
from hub.control.plane import Actor
from hub.control.status import StatusChange
from schemas.connector import ConnectorDocument
from tests.hub.console.conftest import ConsoleUnderTest
from tests.hub.control.fixtures import webhook_connector


async def test_the_streamed_read_matches_the_stores(console: ConsoleUnderTest) -> None:
    plane = console.plane
    refs = [{"secretRef": {"source": "store", "name": "gh-secret"}}]
    for name in ("z", "m", "gone"):
        await plane.apply(ConnectorDocument.model_validate(webhook_connector("a", name, refs)), Actor("test"))
    await plane.statuses.update("a", "m", StatusChange(state="degraded", last_error="timeout"))
    await plane.apply(ConnectorDocument.model_validate(webhook_connector("a", "z", refs, enabled=False)), Actor("t"))
    await plane.delete_connector("a", "gone", Actor("test"))
    js = console.nc.jetstream()
    for tenant in (None, "a", "b", "c"):
        specs, statuses = await connectors_with_statuses(js, tenant)
        assert specs == await plane.specs.connectors(tenant), tenant
        assert statuses == await plane.statuses.all(tenant), tenant
    specs, _ = await connectors_with_statuses(js, "a")
    assert [s.document.metadata.name for s in specs] == ["gh", "m", "z"]
