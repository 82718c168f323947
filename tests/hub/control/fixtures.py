"""Fixtures for the control plane: the admin API in-process on a real nats-server, keys of two
tenants, and `connector-hub run` subprocesses that share one bus and one Valkey."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from events.streams import ensure_streams
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import RunningServer
from hub.control.apikeys import SCOPES
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from hub.poll.store import PollStore
from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
SIGNING_KEY = "test-signing-key-for-service-maps"
START_TIMEOUT_S = 30.0


@dataclass
class Reply:
    """An admin API answer."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class AdminApi:
    """An admin API client bound to one base URL."""

    url: str
    session: aiohttp.ClientSession
    replies: list[Reply] = field(default_factory=list)
    """Every answer, so a test can check that no response ever carried a secret."""

    async def call(
        self, method: str, path: str, key: str | None = None, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        data = None if body is None else io.BytesIO(body if isinstance(body, bytes) else orjson.dumps(body))
        async with self.session.request(method, self.url + path, data=data, headers=sent) as response:
            reply = Reply(response.status, await response.read(), response.headers.copy())
        self.replies.append(reply)
        return reply


@dataclass
class ControlUnderTest:
    """The control plane on a real bus, its admin API served in-process, and keys to call it with."""

    nc: NATS
    plane: ControlPlane
    api: AdminApi
    keys: dict[str, str]
    poll_store: PollStore

    async def key(self, tenant: str | None, scopes: list[str] | tuple[str, ...] = SCOPES) -> str:
        token, _ = await self.plane.create_key(tenant, list(scopes), "test", Actor("test"))
        return token


@pytest.fixture
async def control(nats_server: RunningServer, valkey_server: RunningServer) -> AsyncIterator[ControlUnderTest]:
    """The admin API with keys `a` (tenant a, every scope), `b` (tenant b), `a-read` (tenant a,
    catalog.read only) and `operator` (every tenant)."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_streams(js, Settings().stream_settings())
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    redis = Redis.from_url(valkey_server.url)
    admin = AdminContext(plane, "http://hub.test", SIGNING_KEY, 300, poll_store=PollStore(redis))
    runner = web.AppRunner(build_admin_app(admin), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    session = aiohttp.ClientSession()
    under_test = ControlUnderTest(nc, plane, AdminApi(f"http://{host}:{port}", session), {}, PollStore(redis))
    under_test.keys = {
        "a": await under_test.key("a"),
        "b": await under_test.key("b"),
        "a-read": await under_test.key("a", ["connector.catalog.read"]),
        "operator": await under_test.key(None),
    }
    try:
        yield under_test
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()
        await redis.aclose()


def webhook_connector(tenant: str, name: str, secret_refs: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A GitHub connector document as JSON data."""
    return {
        "apiVersion": "hub/v1",
        "kind": "Connector",
        "metadata": {"name": name, "tenant": tenant},
        "spec": {"type": "webhook", "provider": "github", "secrets": secret_refs, **spec},
    }


@dataclass
class HubProcess:
    """A `connector-hub run` subprocess with every role, stopped by its PID."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    http_url: str
    admin_url: str

    def log(self) -> bytes:
        return self.log_path.read_bytes()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


HubStarter = Callable[..., Awaitable[HubProcess]]


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def start_hub(nats_server: RunningServer, valkey_server: RunningServer, tmp_path: Path) -> Iterator[HubStarter]:
    """Start `connector-hub run` processes on the shared servers, with no spec files: everything
    they serve comes from the spec store."""
    started: list[HubProcess] = []

    async def start(name: str, env: dict[str, str] | None = None, *flags: str) -> HubProcess:
        data_dir = tmp_path / name
        data_dir.mkdir()
        process_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        process_env |= {
            "HUB_NATS_URL": nats_server.url,
            "HUB_REDIS_URL": valkey_server.url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_HTTP_PORT": "0",
            "HUB_ADMIN_PORT": "0",
            "HUB_LOG_FORMAT": "json",
            "HUB_MASTER_KEY": MASTER_KEY,
            "HUB_SIGNING_KEY": SIGNING_KEY,
            **(env or {}),
        }
        log_path = data_dir / "hub.log"
        proc = _spawn([sys.executable, "-m", "hub", "run", *flags], process_env, log_path)
        endpoints = data_dir / "endpoints.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not endpoints.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"hub {name} did not start:\n{log_path.read_text()[-3000:]}")
                await asyncio.sleep(0.05)
            record = orjson.loads(endpoints.read_bytes())
        except BaseException:
            proc.kill()
            proc.wait(timeout=5)
            raise
        hub = HubProcess(proc, log_path, record["http_url"], record["admin_url"])
        started.append(hub)
        return hub

    yield start
    for hub in reversed(started):
        hub.stop()
