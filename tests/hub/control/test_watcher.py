"""The configuration watcher on a real bus: what one process builds from the spec store, by role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest

from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, kv_bucket
from hub.control.plane import Actor
from hub.control.sealing import load_master_key
from hub.control.secretstore import SecretCache
from hub.control.status import StatusChange
from hub.control.watcher import ConfigWatcher
from hub.poll.sources import PollSource
from hub.settings import Settings
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from tests.conftest import wait_for
from tests.hub.control.fixtures import MASTER_KEY, ControlUnderTest

ACTOR = Actor("test")


def webhook(enabled: bool = True, route_subject: str = "svc.a.one") -> ConnectorDocument:
    return ConnectorDocument.model_validate(
        {
            "apiVersion": "hub/v1",
            "kind": "Connector",
            "metadata": {"name": "gh", "tenant": "a"},
            "spec": {
                "type": "webhook",
                "provider": "github",
                "enabled": enabled,
                "secrets": [{"secretRef": {"source": "store", "name": "s"}}],
                "routes": [{"name": "r", "match": {"types": ["github.push"]}, "target": {"subject": route_subject}}],
            },
        }
    )


def poll_source(url: str) -> ConnectorDocument:
    return ConnectorDocument.model_validate(
        {
            "apiVersion": "hub/v1",
            "kind": "Connector",
            "metadata": {"name": "feed", "tenant": "a"},
            "spec": {
                "type": "poll",
                "provider": "feed",
                "poll": {"kind": "rss", "interval": "5m", "request": {"url": url}},
            },
        }
    )


POLICY = PolicyDocument.model_validate(
    {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "a", "tenant": "a"}, "spec": {"default": "allow"}}
)


@dataclass
class Watched:
    """Watchers started by a test, and what they reported."""

    control: ControlUnderTest
    started: list[ConfigWatcher] = field(default_factory=list)
    statuses: list[tuple[str, str, StatusChange]] = field(default_factory=list)
    sources: list[Sequence[PollSource]] = field(default_factory=list)

    async def start(self, roles: Sequence[str]) -> ConfigWatcher:
        js = self.control.nc.jetstream()
        watcher = ConfigWatcher(
            Settings(),
            roles,
            await kv_bucket(js, SPECS_BUCKET),
            await kv_bucket(js, SECRETS_BUCKET),
            SecretCache(load_master_key(MASTER_KEY, None)),
            status=lambda tenant, name, change: self.statuses.append((tenant, name, change)),
            on_sources=self.sources.append,
        )
        await watcher.start()
        self.started.append(watcher)
        return watcher


@pytest.fixture
async def watched(control: ControlUnderTest) -> AsyncIterator[Watched]:
    recorder = Watched(control)
    yield recorder
    for watcher in recorder.started:
        await watcher.stop()


async def test_the_ingress_role_follows_creates_secret_rotations_disables_and_deletes(
    control: ControlUnderTest, watched: Watched
) -> None:
    await control.plane.set_secret("a", "s", b"first", ACTOR)
    await control.plane.apply(webhook(), ACTOR)
    watcher = await watched.start(["ingress"])
    registry = watcher.live.registry
    connector = registry.current.get("a", "gh")
    assert connector is not None
    assert [s.value for s in connector.secrets] == [b"first"]

    await control.plane.set_secret("a", "s", b"second", ACTOR)

    async def rotated() -> bool:
        now = registry.current.get("a", "gh")
        return now is not None and [s.value for s in now.secrets] == [b"second"]

    await wait_for(rotated, timeout=5.0)
    assert [s.value for s in connector.secrets] == [b"first"]  # work under way keeps its version

    await control.plane.apply(webhook(enabled=False), ACTOR)

    async def gone() -> bool:
        return registry.current.get("a", "gh") is None

    await wait_for(gone, timeout=5.0)
    assert watched.statuses[-1][2].state == "disabled"
    await control.plane.apply(webhook(), ACTOR)

    async def back() -> bool:
        return registry.current.get("a", "gh") is not None

    await wait_for(back, timeout=5.0)
    await control.plane.delete_connector("a", "gh", ACTOR)
    await wait_for(gone, timeout=5.0)
    assert watcher.live.catalog.current.connector("a", "gh") is None


async def test_the_gate_roles_follow_routes_and_policies_without_secrets(
    control: ControlUnderTest, watched: Watched
) -> None:
    watcher = await watched.start(["policy", "dispatch"])
    catalog = watcher.live.catalog
    await control.plane.set_secret("a", "s", b"v", ACTOR)
    await control.plane.apply(webhook(), ACTOR)
    await control.plane.apply(POLICY, ACTOR)

    async def routed() -> bool:
        return catalog.current.route("a", "gh", "r") is not None and catalog.current.policy("a") is not None

    await wait_for(routed, timeout=5.0)
    await control.plane.apply(webhook(route_subject="svc.a.two"), ACTOR)

    async def moved() -> bool:
        route = catalog.current.route("a", "gh", "r")
        return route is not None and route.spec.target.subject == "svc.a.two"

    await wait_for(moved, timeout=5.0)
    assert watcher.live.registry.current.get("a", "gh") is None  # no ingress role: no secrets resolved
    assert watched.statuses == []  # only the roles that serve a connector report its status


async def test_the_poller_role_gets_poll_sources_and_reports_unbuildable_ones(
    control: ControlUnderTest, watched: Watched
) -> None:
    await watched.start(["poller"])
    await control.plane.apply(poll_source("https://feeds.example.com/a.xml"), ACTOR)

    async def polled() -> bool:
        return bool(watched.sources) and [s.settings.request.url for s in watched.sources[-1]] == [
            "https://feeds.example.com/a.xml"
        ]

    await wait_for(polled, timeout=5.0)
    assert watched.statuses[-1][:2] == ("a", "feed")
    assert watched.statuses[-1][2].state == "active"


async def test_a_revision_this_instance_cannot_build_leaves_the_last_good_one_serving(
    control: ControlUnderTest, watched: Watched
) -> None:
    await control.plane.set_secret("a", "s", b"first", ACTOR)
    await control.plane.apply(webhook(), ACTOR)
    watcher = await watched.start(["ingress"])
    registry = watcher.live.registry
    good = registry.current.get("a", "gh")
    assert good is not None

    broken = webhook().model_copy(deep=True)
    broken_data = broken.model_dump(mode="json", exclude_unset=True)
    broken_data["spec"]["secrets"] = [{"secretRef": {"source": "env", "name": "NOT_ON_THIS_INSTANCE_9d1"}}]
    await control.plane.apply(ConnectorDocument.model_validate(broken_data), ACTOR)

    async def degraded() -> bool:
        return bool(watched.statuses) and watched.statuses[-1][2].state == "degraded"

    await wait_for(degraded, timeout=5.0)
    change = watched.statuses[-1][2]
    assert change.revision == 2
    assert "NOT_ON_THIS_INSTANCE_9d1" in (change.last_error or "")
    assert "still serving revision 1" in (change.last_error or "")
    assert registry.current.get("a", "gh") is good  # senders are still answered, with revision 1's secrets

    await control.plane.apply(webhook(enabled=False), ACTOR)  # a disable always takes effect

    async def gone() -> bool:
        return registry.current.get("a", "gh") is None

    await wait_for(gone, timeout=5.0)
    assert watched.statuses[-1][2].state == "disabled"


async def test_a_wiped_secret_takes_effect_even_with_a_last_good_revision(
    control: ControlUnderTest, watched: Watched
) -> None:
    await control.plane.set_secret("a", "s", b"first", ACTOR)
    await control.plane.apply(webhook(), ACTOR)
    watcher = await watched.start(["ingress"])
    registry = watcher.live.registry
    assert registry.current.get("a", "gh") is not None
    await control.plane.wipe_secret("a", "s", ACTOR)

    async def gone() -> bool:
        return registry.current.get("a", "gh") is None

    await wait_for(gone, timeout=5.0)
    assert watched.statuses[-1][2].state == "error"
