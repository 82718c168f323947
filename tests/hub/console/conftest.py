"""The console in-process on the admin API's app, over a real nats-server and valkey-server, as
`connector-hub run` mounts it (hub.app.roles.ops_app); a cookie-keeping client per test."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from events.streams import ensure_streams
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.console.app import console_context, mount_console
from hub.control.apikeys import SCOPES
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from hub.poll.store import PollStore
from hub.settings import Settings
from schemas.connector import ConnectorDocument
from tests.hub.control.fixtures import MASTER_KEY, webhook_connector

CSRF = re.compile(rb'name="csrf" value="([^"]+)"')


@dataclass
class Page:
    """A console answer."""

    status: int
    body: bytes
    headers: dict[str, str]
    set_cookies: list[str]

    @property
    def text(self) -> str:
        return self.body.decode()

    def csrf(self) -> str:
        match = CSRF.search(self.body)
        assert match is not None, "the page has no CSRF field"
        return match.group(1).decode()


@dataclass
class Browser:
    """An HTTP client that keeps cookies as a browser does (loopback IP included)."""

    base: str
    session: aiohttp.ClientSession
    pages: list[Page] = field(default_factory=list)
    """Every answer, so a test can check that none ever carried a secret."""

    async def get(self, path: str) -> Page:
        return await self.request("GET", path)

    async def post(self, path: str, form: dict[str, Any], headers: dict[str, str] | None = None) -> Page:
        return await self.request("POST", path, form, headers)

    async def request(
        self, method: str, path: str, form: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Page:
        async with self.session.request(
            method, self.base + path, data=form, headers=headers, allow_redirects=False
        ) as response:
            page = Page(
                response.status,
                await response.read(),
                dict(response.headers),
                response.headers.getall("Set-Cookie", []),
            )
        self.pages.append(page)
        return page

    async def sign_in(self, key: str) -> Page:
        page = await self.post("/console/sign-in", {"key": key})
        assert page.status == 303, page.text
        return page

    def cookie(self) -> str | None:
        for cookie in self.session.cookie_jar:
            if cookie.key == "hub_console":
                return cookie.value
        return None


@dataclass
class ConsoleUnderTest:
    """The console and admin API on one app, its control plane, keys and a browser-like client."""

    nc: NATS
    plane: ControlPlane
    keys: dict[str, str]
    browser: Browser
    base: str
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    breakers: dict[str, Any] = field(default_factory=lambda: {"states": None})
    """What the console reads as this process's circuit breakers: `states` None (no dispatch here) or
    target key -> BreakerState; a test sets it."""

    async def key(self, tenant: str | None, scopes: list[str] | tuple[str, ...] = SCOPES) -> str:
        token, _ = await self.plane.create_key(tenant, list(scopes), "test", Actor("test"))
        return token

    def new_browser(self) -> Browser:
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(session)
        return Browser(self.base, session)


@contextlib.asynccontextmanager
async def console_under_test(
    nats_server: RunningServer, valkey_server: RunningServer, *, read_only: list[str], console_redis: bool
) -> AsyncIterator[ConsoleUnderTest]:
    """The admin API with the console mounted, on real servers: tenants a and b each with a github
    connector `gh` using the store secret `gh-secret`; keys `a`, `b`, `a-read` (`read_only` scopes)
    and `operator`. With `console_redis`, the console has Valkey (rejected-request retry, rates).
    HUB_MASTER_KEY must be set to MASTER_KEY."""
    settings = Settings(http_port=8080)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, settings.stream_settings())
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    redis = Redis.from_url(valkey_server.url)
    app = build_admin_app(AdminContext(plane, "http://hub.test", None, 300, poll_store=PollStore(redis)))
    breakers: dict[str, Any] = {"states": None}
    context = console_context(
        settings, plane, PollStore(redis), nc, redis if console_redis else None, breakers=lambda: breakers["states"]
    )
    mount_console(app, context)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    under_test = ConsoleUnderTest(nc, plane, {}, Browser(base, session), base, [session], breakers)
    try:
        for tenant in ("a", "b"):
            await plane.secrets.set(tenant, "gh-secret", b"initial secret of " + tenant.encode())
            document = webhook_connector(tenant, "gh", [{"secretRef": {"source": "store", "name": "gh-secret"}}])
            await plane.apply(ConnectorDocument.model_validate(document), Actor("test"))
        under_test.keys = {
            "a": await under_test.key("a"),
            "b": await under_test.key("b"),
            "a-read": await under_test.key("a", read_only),
            "operator": await under_test.key(None),
        }
        yield under_test
    finally:
        for client in under_test.sessions:
            await client.close()
        await runner.cleanup()
        await nc.close()
        await redis.aclose()


@pytest.fixture
async def console(
    nats_server: RunningServer, valkey_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ConsoleUnderTest]:
    """`console_under_test` with `a-read` holding catalog.read only, the console without Valkey."""
    monkeypatch.setenv("HUB_MASTER_KEY", MASTER_KEY)
    async with console_under_test(
        nats_server, valkey_server, read_only=["connector.catalog.read"], console_redis=False
    ) as under_test:
        yield under_test
