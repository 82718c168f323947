"""`run --insecure-no-auth` (the admin API without keys, for development): refused unless the admin
API binds to a loopback address, and with it every admin request must name a loopback `Host`, so that
a web page whose name an attacker's DNS rebinds to 127.0.0.1 cannot drive the API from a developer's
browser (the browser sends the page's own name as `Host`)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
import orjson
import pytest
from aiohttp import web
from nats.js import JetStreamContext

from events.streams import AUDIT_STREAM, ensure_streams
from events.subjects import HUB_WIDE, audit_subject
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.connections import connect_redis
from hub.app.embedded import RunningServer
from hub.app.roles import build_context
from hub.control.plane import ControlPlane
from hub.control.sealing import load_master_key
from hub.ingest.connectors import ConnectorRegistry
from hub.ingress.health import add_ops_routes
from hub.runtime.live import Live
from hub.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
REFUSAL = (
    "connector-hub: --insecure-no-auth needs the admin API on a loopback address: HUB_ADMIN_HOST is {host!r} "
    "(use 127.0.0.1, ::1 or localhost)"
)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "hub.example"])  # noqa: S104 - the refused case
def test_the_flag_is_refused_unless_the_admin_api_binds_to_loopback(tmp_path: Path, host: str) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env |= {
        "HUB_ADMIN_HOST": host,
        "HUB_DATA_DIR": str(data_dir),
        # unreachable on purpose: had the flag been let through, start-up would fail on them (after
        # 10 s) without binding anything or starting an embedded server
        "HUB_NATS_URL": "nats://127.0.0.1:9",
        "HUB_REDIS_URL": "redis://127.0.0.1:9",
        "HUB_HTTP_PORT": "0",
        "HUB_ADMIN_PORT": "0",
    }
    argv = [sys.executable, "-m", "hub", "run", "--insecure-no-auth"]
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [REFUSAL.format(host=host)]  # one line, and nothing was started or logged
    assert done.stdout == ""
    assert not data_dir.exists()


@dataclass
class Admin:
    url: str
    port: int
    session: aiohttp.ClientSession
    js: JetStreamContext

    async def get(self, path: str, host: str | None) -> tuple[int, bytes]:
        headers = {"Host": host} if host is not None else {}
        async with self.session.get(f"{self.url}{path}", headers=headers, allow_redirects=False) as response:
            return response.status, await response.read()


@pytest.fixture
async def insecure_admin(nats_server: RunningServer, valkey_server: RunningServer) -> AsyncIterator[Admin]:
    """The admin port's application as `run --insecure-no-auth` builds it (the admin API and the ops
    routes), served in-process on loopback against the real servers."""
    nc = await nats.connect(nats_server.url)
    redis = connect_redis(valkey_server.url, 0.5)
    js = nc.jetstream()
    await ensure_streams(js, Settings().stream_settings())
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    app = build_admin_app(AdminContext(plane, "http://hub.test", None, 300, insecure=True))
    add_ops_routes(app, build_context(Settings(), Live(ConnectorRegistry([])), nc, redis, insecure_no_auth=True))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    session = aiohttp.ClientSession()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield Admin(f"http://{host}:{port}", port, session, js)
    finally:
        await session.close()
        await runner.cleanup()
        await nc.close()
        await redis.aclose()


@pytest.mark.parametrize("path", ["/v1/connectors", "/metrics", "/readyz"])
async def test_a_request_for_another_host_is_refused(insecure_admin: Admin, path: str) -> None:
    for host in ("evil.example", f"evil.example:{insecure_admin.port}", "127.0.0.1.evil.example", "[::2]"):
        status, body = await insecure_admin.get(path, host)
        assert status == 403, (host, body)
        assert orjson.loads(body)["code"] == "host_not_loopback"
        last = await insecure_admin.js.get_last_msg(AUDIT_STREAM, audit_subject(HUB_WIDE, "denied"))
        record = orjson.loads(last.data or b"")
        assert (record["action"], record["outcome"]) == ("denied", "host_not_loopback")  # audited
    for host in (f"127.0.0.1:{insecure_admin.port}", "127.0.0.1", f"localhost:{insecure_admin.port}", "[::1]:80"):
        status, body = await insecure_admin.get(path, host)
        assert status == 200, (host, body)
