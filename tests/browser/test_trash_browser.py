"""Deleting and restoring a connector in a real browser against a `connector-hub run` process: the
connector page's Delete link, its confirmation, the Deleted page's Restore (the hub serves the
connector again), and axe (WCAG 2.2 AA) over the confirmation, Deleted and Retention pages."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from events.streams import STREAMS
from tests.browser.conftest import Hub, audit_page, sign_in
from tests.browser.test_console_browser import new_page
from tests.conftest import wait_for


async def hook_status(hub: Hub) -> int:
    async with hub.http.post(f"{hub.process.http_url}/hooks/a/gh", data=b"{}") as response:
        return response.status


async def test_delete_from_the_connector_page_and_restore_from_deleted(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["a"])
    await page.goto(hub.console + "/connectors/a/gh")
    await page.get_by_role("link", name="Delete connector (restorable for 7d)").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Delete connector a/gh?")
    await audit_page(page, "delete-confirm")
    await page.get_by_role("button", name="Delete a/gh (restorable for 7d)").click()
    await page.wait_for_url("**/console/deleted?notice=deleted")
    await expect(page.get_by_role("status")).to_contain_text("The connector is deleted")
    await expect(page.get_by_role("row", name="a/gh")).to_contain_text("gh-secret")
    await audit_page(page, "deleted")

    async def gone() -> bool:
        return await hook_status(hub) == 404

    await wait_for(gone, timeout=20, what="the hub to stop serving a/gh")

    await page.get_by_role("button", name="Restore a/gh").click()
    await page.wait_for_url("**/console/connectors/a/gh?notice=restored")
    await expect(page.get_by_role("status")).to_contain_text("restored as a new revision")

    async def served() -> bool:
        return await hook_status(hub) != 404

    await wait_for(served, timeout=20, what="the hub to serve a/gh again")
    stored = await hub.plane.specs.connector("a", "gh")
    assert stored is not None
    assert stored.revision > 1
    await page.get_by_role("link", name="Deleted").click()
    await expect(page.get_by_role("cell", name="No deleted connector.")).to_be_visible()


async def test_the_retention_page_passes_axe_for_an_operator(chromium: Browser, hub: Hub) -> None:
    page = await new_page(chromium)
    await sign_in(page, hub, hub.keys["operator"])
    await page.get_by_role("link", name="Retention").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Retention")
    for stream in STREAMS:
        await expect(page.get_by_role("rowheader", name=stream, exact=True)).to_be_visible()
    await expect(page.get_by_role("definition").first).to_have_text("7d")
    await audit_page(page, "retention")
