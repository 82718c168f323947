"""The Dead letters and Rejected pages in a real browser against a `connector-hub run` process: a
dead letter redriven to a loopback HTTP target (received once), a refused request retried after its
key is fixed with the connector page's Set key (recovered), the connectors page's events per minute
after a few webhooks, and axe (WCAG 2.2 AA) over the new pages with zero violations."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import Browser, expect

from events.deadletter import DeadLetter, FailureClass
from events.streams import DLQ_STREAM
from events.subjects import dlq_subject
from hub.control.plane import Actor
from schemas.connector import ConnectorDocument
from schemas.policy import PolicyDocument
from tests.browser.conftest import Hub, audit_page, sign_in
from tests.browser.test_console_browser import NEW_SECRET, new_page, send_github
from tests.conftest import wait_for
from tests.hub.gate.harness import envelope, gate_idle, http_target, stream_messages


async def served(hub: Hub, connector: str) -> None:
    async def answers() -> bool:
        async with hub.http.post(f"{hub.process.http_url}/hooks/a/{connector}", data=b"{}") as response:
            return response.status != 404

    await wait_for(answers, timeout=20, what=f"the hub to serve a/{connector}")


async def test_a_dead_letter_redriven_from_its_page_reaches_the_target_once(chromium: Browser, hub: Hub) -> None:
    async with http_target() as target:
        policy = {
            "apiVersion": "hub/v1",
            "kind": "Policy",
            "metadata": {"name": "default", "tenant": "a"},
            "spec": {
                "allowedHosts": ["127.0.0.1"],
                "egress": {"allowedNetworks": ["127.0.0.0/8"]},
                "rules": [{"name": "all", "effect": "allow"}],
            },
        }
        route = {"name": "hook", "match": {"types": ["github.push"]}, "target": {"http": {"url": target.url + "/in"}}}
        connector = {
            "apiVersion": "hub/v1",
            "kind": "Connector",
            "metadata": {"name": "rd", "tenant": "a"},
            "spec": {
                "type": "webhook",
                "provider": "github",
                "secrets": [{"secretRef": {"source": "store", "name": "gh-secret"}}],
                "routes": [route],
            },
        }
        await hub.plane.apply(PolicyDocument.model_validate(policy), Actor("test"))
        await hub.plane.apply(ConnectorDocument.model_validate(connector), Actor("test"))
        await served(hub, "rd")
        event = envelope("a", "rd", "github.push", event_id=uuid.uuid4().hex)
        letter = DeadLetter(
            invocation_id=f"a:rd:{event.id}:hook",
            tenant="a",
            connector="rd",
            route="hook",
            target=target.url + "/in",
            failure_class=FailureClass.TRANSIENT,
            error="http 503 after 3 attempts",
            attempts=3,
            first_attempt_at=None,
            failed_at="2026-12-06T09:00:00Z",
            envelope=event.to_json(),
        )
        js = hub.nc.jetstream()
        seq = (await js.publish(dlq_subject("a", "rd", "hook"), letter.to_json())).seq

        page = await new_page(chromium)
        await sign_in(page, hub, hub.keys["a"])
        await page.get_by_role("link", name="Dead letters").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Dead letters")
        await audit_page(page, "deadletters")
        await page.get_by_role("link", name=str(seq), exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(f"Dead letter {seq}")
        await audit_page(page, "deadletter")
        await page.get_by_role("button", name="Redrive", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("sent again")

        async def received() -> bool:
            return len(target.requests) >= 1

        await wait_for(received, timeout=15, what="the redriven invocation at the target")
        await wait_for(lambda: gate_idle(js), timeout=15, what="the gate idle")
        assert len(target.requests) == 1
        headers, _ = target.requests[0]
        assert headers["Idempotency-Key"] == letter.invocation_id
        assert await stream_messages(js, DLQ_STREAM) == []
        await audit_page(page, "deadletters-redriven")


async def test_a_refused_request_recovers_after_set_key(chromium: Browser, hub: Hub) -> None:
    assert await send_github(hub, NEW_SECRET.encode()) == 401  # the hub holds another secret: kept
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.get_by_role("link", name="Rejected").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Rejected requests")
    kept = page.get_by_role("row").filter(has_text="bad_signature: no_match").get_by_role("link")

    async def listed() -> bool:  # kept by a core publish: it may land a moment after the 401
        await page.reload()
        return await kept.count() == 1

    await wait_for(listed, what="the refused request in the listing")
    await audit_page(page, "rejected")
    await kept.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Rejected request")
    await expect(page.get_by_role("cell", name="kept, not shown")).to_be_visible()  # the signature
    await audit_page(page, "rejected-one")
    kept_url = page.url

    await page.get_by_role("link", name="Connector a/gh").click()
    await page.get_by_label("New value of gh-secret").fill(NEW_SECRET)
    await page.get_by_role("button", name="Set key").click()
    await expect(page.get_by_role("status")).to_contain_text("The new secret version is stored.")

    await page.goto(kept_url)
    await page.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_contain_text("Recovered")
    await audit_page(page, "rejected-recovered")


async def test_the_connectors_page_shows_events_per_minute_after_webhooks(chromium: Browser, hub: Hub) -> None:
    secret = b"first secret of a"  # the fixture's value of a/gh's gh-secret
    for _ in range(5):
        assert await send_github(hub, secret) == 202
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="a/gh"))

    async def counted() -> bool:
        await page.reload()
        cells = await row.get_by_role("cell").all_inner_texts()
        return "1.0" in cells  # 5 events over the last 5 minutes

    await wait_for(counted, timeout=20, what="the reporter to flush the counts")
    cells = await row.get_by_role("cell").all_inner_texts()
    assert "never" not in cells, cells  # the last event's time is shown
    await audit_page(page, "connectors-rates")


async def test_redrive_selected_starts_a_job_shown_on_the_page(chromium: Browser, hub: Hub) -> None:
    js = hub.nc.jetstream()
    seqs = []
    for n, failure in enumerate((FailureClass.TRANSIENT, FailureClass.PERMANENT, FailureClass.QUOTA_EXCEEDED)):
        event = envelope("a", "gh", "github.push", event_id=uuid.uuid4().hex)
        letter = DeadLetter(
            invocation_id=f"a:gh:{event.id}:orders",
            tenant="a",
            connector="gh",
            route="orders",
            target="https://orders.example/in",
            failure_class=failure,
            error=("http 503", "http 422", "http 429")[n],
            attempts=(5, 1, 5)[n],
            first_attempt_at=None,
            failed_at=f"2026-12-06T09:0{n}:00Z",
            envelope=event.to_json(),
        )
        seqs.append((await js.publish(dlq_subject("a", "gh", "orders"), letter.to_json())).seq)
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["operator"])
    await page.goto(hub.console + "/deadletters")
    for seq in seqs[:2]:
        await page.get_by_label(f"Select dead letter {seq}").check()
    await page.get_by_role("button", name="Redrive selected").click()
    await expect(page.get_by_role("status")).to_contain_text("A redrive job started")
    job_link = page.get_by_role("link", name="Redrive job")
    await expect(job_link).to_have_attribute("href", re.compile(r"^/console/jobs/[0-9a-f]{32}$"))
    await expect(page.get_by_role("row").filter(has_text="quota exceeded")).to_have_count(1)  # not selected
    await audit_page(page, "deadletters-job")
