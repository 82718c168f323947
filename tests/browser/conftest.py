"""Browser tests of the console: Debian's Chromium driven by Playwright (no `playwright install`),
against a `connector-hub run` process over real nats-server and valkey-server, with axe-core (shipped
inside the `axe-playwright-python` wheel, so nothing is fetched at test time) auditing every page."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
import pytest
from axe_playwright_python.async_playwright import Axe
from nats.aio.client import Client as NATS
from playwright.async_api import Browser, Page, async_playwright

from hub.app.embedded import RunningServer
from hub.control.apikeys import SCOPES
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from schemas.connector import ConnectorDocument
from tests.conftest import wait_for
from tests.hub.control.fixtures import MASTER_KEY, HubProcess, HubStarter, webhook_connector

CHROMIUM_ENV = "CONSOLE_TEST_CHROMIUM"
SCREENSHOTS = Path(__file__).parent / "screenshots"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
STORE_REF = [{"secretRef": {"source": "store", "name": "gh-secret"}}]
TIMEOUT_MS = 15_000


def chromium_path() -> str:
    """Debian's Chromium: $CONSOLE_TEST_CHROMIUM, else `chromium` on the PATH. Missing: skip, or under
    CI (the CI variable set) fail, as CI must run these tests."""
    found = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")
    if found:
        return found
    message = "no Chromium found: apt-get install chromium (or set CONSOLE_TEST_CHROMIUM to its path)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Hub:
    """A running hub with the console, its control plane (as the operator), keys and a connector
    `gh` of tenant a (and one of tenant b) signed with the store secret `gh-secret`."""

    process: HubProcess
    nc: NATS
    plane: ControlPlane
    keys: dict[str, str]
    http: aiohttp.ClientSession

    @property
    def console(self) -> str:
        return self.process.admin_url + "/console"


@pytest.fixture
async def hub(start_hub: HubStarter, nats_server: RunningServer, valkey_server: RunningServer) -> AsyncIterator[Hub]:
    process = await start_hub("console")
    nc = await nats.connect(nats_server.url)
    plane = await ControlPlane.open(nc.jetstream(), load_master_key(MASTER_KEY, None))
    operator = Actor("test")
    for tenant in ("a", "b"):
        await plane.set_secret(tenant, "gh-secret", b"first secret of " + tenant.encode(), operator)
        document = ConnectorDocument.model_validate(webhook_connector(tenant, "gh", STORE_REF))
        await plane.apply(document, operator)
    keys = {}
    for name, tenant in (("a", "a"), ("b", "b"), ("operator", None)):
        keys[name], _ = await plane.create_key(tenant, list(SCOPES), "browser test", operator)
    http = aiohttp.ClientSession()
    hub = Hub(process, nc, plane, keys, http)

    async def serving() -> bool:
        async with http.post(f"{process.http_url}/hooks/a/gh", data=b"{}") as response:
            return response.status != 404  # unsigned: 401 once the connector is served

    await wait_for(serving, timeout=20, what="the hub to serve a/gh")
    try:
        yield hub
    finally:
        await http.close()
        await nc.close()


async def audit_page(page: Page, name: str) -> None:
    """Screenshot the page (tests/browser/screenshots/<name>.png, git-ignored) and fail on any axe
    violation of WCAG 2.2 AA."""
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    results = await Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}})
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"


async def sign_in(page: Page, hub: Hub, key: str) -> None:
    await page.goto(hub.console + "/sign-in")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/connectors")
