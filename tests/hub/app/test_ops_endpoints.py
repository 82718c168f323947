"""`/readyz` and `/metrics` describe every tenant and connector, so they are served on the admin port
(by every process, whatever its roles, and by every worker of `run --workers N`), never on the public
ingress port, which answers 404 for them; `/healthz` stays there for load balancers and names nothing;
`/readyz` counts shadow connectors without naming them.

Each test runs the real `connector-hub run` (a subprocess on the fixtures' nats-server and
valkey-server, loopback ports picked by the OS), stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from hub.app.embedded import RunningServer
from tests.conftest import wait_for
from tests.hub.ingress.signing import GITHUB, SecretSpec, new_secret, specs_yaml

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
TENANT = "hidden-tenant-q7"
SECRET = SecretSpec("k1", "OPS_GH_SECRET", new_secret("github"))
NAMES = (TENANT, "visible-gh-x3", "onboarding-z9")
"""The tenant and connector names; none may appear in what the ingress port or /readyz answer."""


def specs(tmp_path: Path) -> Path:
    """Two GitHub connectors of TENANT, one of them in shadow mode."""
    enforce = GITHUB.doc([SECRET], name=NAMES[1])
    shadow = GITHUB.doc([SECRET], name=NAMES[2], verification="shadow")
    for doc in (enforce, shadow):
        doc["metadata"]["tenant"] = TENANT
    path = tmp_path / "connectors.yaml"
    path.write_text(specs_yaml(enforce, shadow))
    return path


@dataclass
class Hub:
    """A `connector-hub run` subprocess and the URLs of its endpoints record."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    record: dict[str, Any]

    def stop(self) -> None:
        """SIGTERM by PID (SIGKILL after STOP_TIMEOUT_S); a supervisor stops its workers itself."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


Starter = Callable[..., Awaitable[Hub]]


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
async def start(tmp_path: Path, nats_server: RunningServer, valkey_server: RunningServer) -> AsyncIterator[Starter]:
    """Start `connector-hub run <flags>` and wait for its endpoints record (every worker listening)."""
    started: list[Hub] = []

    async def starter(*flags: str, workers: int = 1) -> Hub:
        data_dir = tmp_path / f"hub-{len(started)}"
        data_dir.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= {
            "HUB_NATS_URL": nats_server.url,
            "HUB_REDIS_URL": valkey_server.url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_CONNECTORS": str(specs(tmp_path)),
            "HUB_HTTP_PORT": "0",
            "HUB_ADMIN_PORT": "0",
            "HUB_LOG_FORMAT": "json",
            SECRET.env: SECRET.value,
        }
        log_path = data_dir / "hub.log"
        proc = spawn([sys.executable, "-m", "hub", "run", "--workers", str(workers), *flags], env, log_path)
        hub = Hub(proc, log_path, {})
        started.append(hub)
        endpoints = data_dir / "endpoints.json"

        async def listening() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"the hub exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            if not endpoints.exists():
                return False
            hub.record = orjson.loads(endpoints.read_bytes())
            return len(hub.record["worker_pids"]) == (workers if workers > 1 else 0)

        await wait_for(listening, START_TIMEOUT_S, "the hub's endpoints record")
        return hub

    try:
        yield starter
    finally:
        for hub in reversed(started):
            hub.stop()


async def get(url: str) -> tuple[int, bytes]:
    """One GET on a fresh connection (so that with several workers the kernel may pick any of them)."""
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as response:
        return response.status, await response.read()


def names_in(body: bytes) -> list[str]:
    return [name for name in NAMES if name.encode() in body]


@pytest.mark.parametrize("roles", [None, "ingress", "policy,dispatch"])
async def test_readiness_and_metrics_are_on_the_admin_port_only(start: Starter, roles: str | None) -> None:
    hub = await start(*(["--role", roles] if roles else []))
    http_url, admin_url = hub.record["http_url"], hub.record["admin_url"]

    assert (await get(f"{http_url}/metrics"))[0] == 404
    assert (await get(f"{http_url}/readyz"))[0] == 404
    status, health = await get(f"{http_url}/healthz")
    assert (status, orjson.loads(health), names_in(health)) == (200, {"status": "ok"}, [])

    status, metrics = await get(f"{admin_url}/metrics")
    assert status == 200
    assert b"hub_connectors " in metrics
    status, ready = await get(f"{admin_url}/readyz")
    assert status == 200, ready
    assert orjson.loads(ready)["ready"] is True
    assert names_in(ready) == []
    if roles != "policy,dispatch":  # the webhook connectors are loaded with the ingress role
        warning = "1 connector(s) in shadow verification mode: unverified events are accepted"
        assert orjson.loads(ready)["warnings"] == [warning]
    if roles is not None:  # the admin API is the admin role's; the admin port serves /readyz and /metrics anyway
        assert (await get(f"{admin_url}/v1/openapi.json"))[0] == 404


async def test_every_worker_serves_metrics_on_the_shared_admin_port(start: Starter) -> None:
    hub = await start("--role", "ingress", workers=2)
    http_url, admin_url = hub.record["http_url"], hub.record["admin_url"]
    for _ in range(8):  # fresh connections: the kernel spreads them across the workers
        assert (await get(f"{admin_url}/metrics"))[0] == 200
        assert (await get(f"{admin_url}/readyz"))[0] == 200
        assert (await get(f"{http_url}/metrics"))[0] == 404
