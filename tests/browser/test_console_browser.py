"""The console in a real browser: sign-in, every page audited by axe-core (WCAG 2.2 AA) and
screenshotted, Set key proven by a webhook signed with the new value, disable proven by senders'
404, a keyboard-only walk, tenant isolation, CSRF and ended-session refusals."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid

import orjson
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import TIMEOUT_MS, Hub, audit_page, sign_in
from tests.conftest import wait_for
from tests.hub.gate.harness import stream_messages

NEW_SECRET = "whsec-browser-set-key-4d9e1b7c"
TOKEN = re.compile(r"^chk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$")


async def send_github(hub: Hub, secret: bytes) -> int:
    """A GitHub `push` to a/gh signed with `secret`; the status the ingress answered."""
    body = orjson.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex})
    headers = {
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    async with hub.http.post(f"{hub.process.http_url}/hooks/a/gh", data=body, headers=headers) as response:
        return response.status


async def new_page(chromium: Browser) -> Page:
    page = await (await chromium.new_context()).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return page


async def test_every_page_passes_axe_and_is_screenshotted(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await page.goto(hub.console + "/sign-in")
    await audit_page(page, "sign-in")
    await sign_in(page, hub, hub.keys["operator"])
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connectors")
    await audit_page(page, "connectors")
    await page.get_by_role("link", name="a/gh").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connector a/gh")
    await audit_page(page, "connector")
    await page.get_by_role("link", name="Keys").click()
    await page.get_by_label("connector.catalog.read").check()
    await page.get_by_label("Tenant (empty: an operator key, every tenant)").fill("a")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.get_by_role("textbox", name="Token")).to_have_value(TOKEN)
    await audit_page(page, "keys")
    await page.get_by_role("link", name="Audit").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Audit")
    await audit_page(page, "audit")
    await page.goto(hub.console + "/connectors/a/no-such")
    await expect(page.get_by_role("alert")).to_contain_text("No such connector")
    await audit_page(page, "not-found")


async def test_set_key_is_used_by_the_ingress_and_the_value_appears_nowhere(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    bodies: list[bytes] = []

    page.on("response", lambda response: bodies.append(orjson.dumps(response.headers)))
    await sign_in(page, hub, hub.keys["a"])
    await page.goto(hub.console + "/connectors/a/gh")
    assert await send_github(hub, NEW_SECRET.encode()) == 401
    await page.get_by_label("New value of gh-secret").fill(NEW_SECRET)
    await page.get_by_role("button", name="Set key").click()
    await expect(page.get_by_role("status")).to_contain_text("The new secret version is stored.")
    await expect(page.get_by_text("set, version 2")).to_be_visible()
    bodies.append((await page.content()).encode())

    async def accepted() -> bool:
        return await send_github(hub, NEW_SECRET.encode()) == 202

    await wait_for(accepted, timeout=15, what="the ingress to accept the new secret")
    for path in ("/connectors", "/keys", "/audit"):
        response = await page.goto(hub.console + path)
        assert response is not None
        bodies.append(await response.body())
    assert bodies
    assert all(NEW_SECRET.encode() not in body for body in bodies)
    assert NEW_SECRET not in await page.content()
    assert all(NEW_SECRET not in cookie["value"] for cookie in await page.context.cookies())
    assert NEW_SECRET.encode() not in hub.process.log()
    js = hub.nc.jetstream()
    for info in await js.streams_info():
        for message in await stream_messages(js, info.config.name or ""):
            assert NEW_SECRET.encode() not in message.data, info.config.name


async def test_disable_makes_senders_get_404(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.goto(hub.console + "/connectors/a/gh")
    await expect(page.locator("main")).to_contain_text(f"{hub.process.http_url}/hooks/a/gh")  # the port bound
    await page.get_by_role("button", name="Disable connector").click()
    await expect(page.get_by_role("status")).to_contain_text("The connector is disabled")
    await expect(page.locator("#connector-state .pill")).to_have_text("disabled")

    async def gone() -> bool:
        return await send_github(hub, b"first secret of a") == 404

    await wait_for(gone, timeout=15, what="senders to get 404 from the disabled connector")
    await page.get_by_role("button", name="Enable connector").click()
    await expect(page.get_by_role("status")).to_contain_text("The connector is enabled.")


async def focus_on(page: Page, selector: str, presses: int = 60) -> None:
    """Press Tab until the element matching `selector` has the focus (bounded)."""
    for _ in range(presses):
        if await page.evaluate("(s) => document.activeElement?.matches(s) ?? false", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


async def assert_visible_focus(page: Page) -> None:
    outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), "the focused element has no visible focus style"


async def test_keyboard_only_sign_in_connectors_connector_set_key(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await page.goto(hub.console + "/sign-in")
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.textContent") == "Skip to main content"
    await assert_visible_focus(page)
    await focus_on(page, "#key")
    await page.keyboard.type(hub.keys["a"])
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/connectors")
    await focus_on(page, 'a[href="/console/connectors/a/gh"]')
    await assert_visible_focus(page)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/console/connectors/a/gh")
    await focus_on(page, "#value-1")
    await page.keyboard.type(NEW_SECRET)
    await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.textContent") == "Set key"
    await assert_visible_focus(page)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_contain_text("The new secret version is stored.")


async def test_a_tenant_cannot_reach_another_tenants_pages(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await expect(page.get_by_role("link", name="b/gh")).to_have_count(0)
    existing = await page.goto(hub.console + "/connectors/b/gh")
    assert existing is not None
    existing_text = await page.get_by_role("main").inner_text()
    missing = await page.goto(hub.console + "/connectors/b/no-such")
    assert missing is not None
    assert existing.status == missing.status == 404
    assert existing_text == await page.get_by_role("main").inner_text()


async def test_csrf_and_ended_sessions_are_refused(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.goto(hub.console + "/connectors/a/gh")
    await page.evaluate("() => { for (const f of document.querySelectorAll('input[name=csrf]')) f.value = 'forged'; }")
    await page.get_by_role("button", name="Disable connector").click()
    await expect(page.get_by_role("alert")).to_contain_text("security token is missing or wrong")
    stored = await hub.plane.specs.connector("a", "gh")
    assert stored is not None
    assert stored.document.spec.enabled  # type: ignore[union-attr]
    await page.context.clear_cookies()
    await page.context.add_cookies([{"name": "hub_console", "value": "forged.session.value", "url": hub.console + "/"}])
    await page.goto(hub.console + "/connectors")
    await page.wait_for_url("**/console/sign-in?ended=1")
    await expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
