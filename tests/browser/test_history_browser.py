"""The Events, Event, Replay and Job pages in a real browser against a running hub: an event routed to
a loopback HTTP target is found and its journey shows the attempt; a replay goes from its dry run to
a succeeded job; a long replay is canceled; every page passes axe (WCAG 2.2 AA) and is screenshotted."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import shutil
import uuid
from pathlib import Path

import orjson
from playwright.async_api import Browser, Page, expect

from events.journey import ATTEMPT
from hub.control.plane import Actor
from hub.history.events import journey_of
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from tests.browser.conftest import SCREENSHOTS, STORE_REF, TIMEOUT_MS, Hub, audit_page, sign_in
from tests.conftest import wait_for
from tests.hub.control.fixtures import webhook_connector
from tests.hub.gate.harness import HttpTarget, envelope, http_target, publish_event

DOCS = Path(__file__).parents[2] / "docs"
SECRET = b"first secret of a"  # a/gh's store secret, as the hub fixture sets it


async def new_page(chromium: Browser) -> Page:
    context = await chromium.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def route_to(hub: Hub, target: HttpTarget) -> None:
    """a/gh routes its pushes to the loopback target; tenant a's policy allows that host."""
    actor = Actor("test")
    policy = {
        "allowedHosts": ["127.0.0.1"],
        "egress": {"allowedNetworks": ["127.0.0.0/8"]},
        "rules": [{"name": "all", "effect": "allow"}],
    }
    document = {"apiVersion": "hub/v1", "kind": "Policy", "metadata": {"name": "a", "tenant": "a"}, "spec": policy}
    await hub.plane.apply(PolicyDocument.model_validate(document), actor)
    route = {"name": "deliver", "match": {"types": ["github.push"]}, "target": {"http": {"url": target.url + "/in"}}}
    connector = webhook_connector("a", "gh", STORE_REF, routes=[route])
    stored = await hub.plane.specs.connector("a", "gh")
    assert stored is not None
    connector["metadata"]["revision"] = stored.revision
    await hub.plane.apply(ConnectorDocument.model_validate(connector), actor)


async def send_push(hub: Hub) -> str:
    """A signed GitHub push to a/gh; its delivery id (the event id)."""
    delivery = str(uuid.uuid4())
    body = orjson.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex})
    headers = {
        "X-Hub-Signature-256": "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest(),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
    async with hub.http.post(f"{hub.process.http_url}/hooks/a/gh", data=body, headers=headers) as response:
        assert response.status < 300, await response.text()
    return delivery


async def delivered_event(hub: Hub, target: HttpTarget) -> str:
    """The id of a push the gate delivered to the target (pushes are sent until the gate's catalog
    has the new route), once its journey holds the attempt."""
    sent: list[str] = []

    async def reached() -> bool:
        if not target.requests:
            sent.append(await send_push(hub))
            return False
        return True

    await wait_for(reached, timeout=30, what="a push delivered to the target")
    event_id = next(value for name, value in target.requests[0][0].items() if name.lower() == "ce-id")

    async def attempted() -> bool:
        return any(r.kind == ATTEMPT for r in await journey_of(hub.nc, "a", "gh", event_id))

    await wait_for(attempted, timeout=10, what="the attempt in the event's journey")
    return event_id


def keep_for_docs(name: str) -> None:
    """The screenshot the README and docs/console.md show."""
    shutil.copyfile(SCREENSHOTS / f"{name}-docs.png", DOCS / f"console-{name}.png")


async def test_find_an_event_and_open_its_journey(chromium: Browser, hub: Hub) -> None:
    async with http_target() as target:
        await route_to(hub, target)
        event_id = await delivered_event(hub, target)
        page = await new_page(chromium)
        await sign_in(page, hub, hub.keys["a"])
        await page.get_by_role("link", name="Events", exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Events")
        await expect(page.get_by_role("link", name=event_id)).to_be_visible()
        await page.screenshot(path=str(SCREENSHOTS / "events-docs.png"))
        await audit_page(page, "events")
        await page.get_by_label("Event id").fill(event_id)
        await page.get_by_label("Connector", exact=True).fill("gh")
        await page.get_by_role("button", name="Apply").click()
        await expect(page.locator("#event-rows tr")).to_have_count(1)
        await page.get_by_role("link", name=event_id).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Event {event_id}")
        timeline = page.locator("ol.timeline")
        await expect(timeline.locator("li").first).to_contain_text("Routed")
        await expect(timeline).to_contain_text("Route deliver: allow by rule all")
        attempt = timeline.locator("li.step-attempt").first
        await expect(attempt).to_contain_text("Attempt 1")
        await expect(attempt).to_contain_text("delivered")
        await expect(attempt).to_contain_text("200")
        await page.screenshot(path=str(SCREENSHOTS / "event-docs.png"))
        await audit_page(page, "event")
    keep_for_docs("events")
    keep_for_docs("event")


async def test_new_events_appear_on_the_events_page_by_themselves(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.goto(hub.console + "/events")
    await expect(page.get_by_text("No event matches.")).to_be_visible()
    await publish_event(hub.nc.jetstream(), envelope("a", "gh", "github.push", event_id="arrives-later"))
    arrived = page.get_by_role("link", name="arrives-later")
    await expect(arrived).to_be_visible(timeout=TIMEOUT_MS)  # at the next poll, every 5 s
    await expect(page.get_by_role("status").filter(has_text="new event")).to_contain_text("1 new event")
    await expect(page.get_by_text("No event matches.")).to_have_count(0)


async def test_replay_with_a_dry_run_then_follow_the_job_to_succeeded(chromium: Browser, hub: Hub) -> None:
    js = hub.nc.jetstream()
    for n in range(3):
        await publish_event(js, envelope("a", "gh", "github.push", event_id=f"replay-{n}"))
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.get_by_role("link", name="Replay", exact=True).click()
    await page.get_by_label("Connector", exact=True).fill("gh")
    await page.get_by_label("to the shadow subject").check()
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.locator("#dry-count")).to_contain_text("3 events match")
    await audit_page(page, "replay")
    await page.get_by_role("button", name="Replay 3 events").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Job")
    await expect(page.locator("#progress")).to_contain_text("succeeded", timeout=30_000)
    await expect(page.locator("#progress")).to_contain_text("3 of 3")
    await audit_page(page, "job")


async def test_cancel_a_running_replay(chromium: Browser, hub: Hub) -> None:
    js = hub.nc.jetstream()
    events = [envelope("a", "gh", "github.push", event_id=f"many-{n}") for n in range(6000)]
    for start in range(0, len(events), 500):
        await asyncio.gather(*(publish_event(js, event) for event in events[start : start + 500]))
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.goto(hub.console + "/replay")
    await page.get_by_label("Connector", exact=True).fill("gh")
    await page.get_by_label("to the shadow subject").check()
    await page.get_by_role("button", name="Dry run").click()
    await page.get_by_role("button", name="Replay 6000 events").click()
    await page.get_by_role("button", name="Cancel job").click()  # at 500 events/s it runs for 12 s
    await expect(page.get_by_role("status")).to_contain_text("Cancel requested")
    await expect(page.locator("#progress")).to_contain_text("canceled", timeout=30_000)
    await audit_page(page, "job-canceled")
