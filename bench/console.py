"""Console benchmark: server time of the Connectors page with 1,000 connectors, and of the Events
page's first page with 1,000,000 stored events.

    .venv/bin/python bench/console.py [--connectors 1000] [--requests 200] [--events 1000000]

An embedded nats-server and valkey-server (stopped by PID at the end, also on error), the admin app
with the console mounted as `connector-hub run` mounts it, N github connectors of 10 tenants stored
through the control plane (statuses set, some degraded or in error), one operator key signed in;
then sequential GETs of /console/connectors (every tenant, sorted by state, page 2 of 50 rows) and
of a text-filtered listing; then HUB_EVENTS is filled as bench/history.py fills it (its `fill`: 100
connectors of 10 tenants, with their journeys) and the first page of /console/events (every tenant,
newest first) and of one connector's events are timed. Prints p50 and p95 per listing (target:
p95 < 300 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import nats
from aiohttp import web
from history import fill  # bench/history.py (this script's folder is on the path)
from redis.asyncio import Redis

from events.streams import ensure_streams
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.embedded import start_nats, start_valkey
from hub.console.app import console_context, mount_console
from hub.control.apikeys import SCOPES
from hub.control.plane import Actor, ControlPlane
from hub.control.sealing import load_master_key
from hub.control.status import StatusChange
from hub.poll.store import PollStore
from hub.settings import Settings
from schemas.connector import ConnectorDocument

MASTER_KEY = base64.b64encode(bytes(range(32))).decode()
TARGET_P95_MS = 300.0


def connector(tenant: str, name: str) -> ConnectorDocument:
    return ConnectorDocument.model_validate(
        {
            "apiVersion": "hub/v1",
            "kind": "Connector",
            "metadata": {"name": name, "tenant": tenant},
            "spec": {
                "type": "webhook",
                "provider": "github",
                "secrets": [{"secretRef": {"source": "store", "name": "gh-secret"}}],
            },
        }
    )


async def seed(plane: ControlPlane, count: int) -> None:
    actor = Actor("bench")
    tenants = [f"tenant-{i}" for i in range(10)]
    for tenant in tenants:
        await plane.secrets.set(tenant, "gh-secret", b"bench secret")

    async def one(i: int) -> None:
        tenant, name = tenants[i % len(tenants)], f"hook-{i:04d}"
        await plane.apply(connector(tenant, name), actor)
        state = "degraded" if i % 7 == 0 else "error" if i % 11 == 0 else "active"
        error = "signature mismatch" if state == "error" else None
        await plane.statuses.update(tenant, name, StatusChange(state=state, last_error=error))

    for start in range(0, count, 50):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 50))))


async def timed(session: aiohttp.ClientSession, url: str, requests: int) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            assert response.status == 200, response.status
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(label: str, times: list[float]) -> None:
    p50 = statistics.median(times)
    p95 = statistics.quantiles(times, n=20)[-1]
    verdict = "ok" if p95 < TARGET_P95_MS else f"over the {TARGET_P95_MS:.0f} ms target"
    print(f"{label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(times)} requests ({verdict})")


async def events_listing(nc: nats.NATS, session: aiohttp.ClientSession, base: str, args: argparse.Namespace) -> None:
    """Fill HUB_EVENTS, then time the Events page's first page."""
    started = time.perf_counter()
    fill_args = argparse.Namespace(
        events=args.events, connectors=100, data_bytes=512, in_flight=1_000, fill_cap=args.fill_cap
    )
    stored = await fill(nc, fill_args)
    print(f"{stored} events stored in {time.perf_counter() - started:.1f} s")
    await timed(session, f"{base}/events", 5)  # warm-up
    report(f"events, first page of {stored}", await timed(session, f"{base}/events", args.requests))
    report(
        "events, tenant t3, connector c031",
        await timed(session, f"{base}/events?tenant=t3&connector=c031", args.requests),
    )


async def main(count: int, requests: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        nats_server = start_nats(Path(tmp) / "nats")
        valkey_server = start_valkey(Path(tmp) / "valkey")
        try:
            await run(nats_server.url, valkey_server.url, count, requests, args)
        finally:
            nats_server.stop()
            valkey_server.stop()


async def run(nats_url: str, redis_url: str, count: int, requests: int, args: argparse.Namespace) -> None:
    settings = Settings(master_key=MASTER_KEY)  # type: ignore[arg-type]
    nc = await nats.connect(nats_url)
    redis = Redis.from_url(redis_url)
    js = nc.jetstream()
    await ensure_streams(js, settings.stream_settings())
    plane = await ControlPlane.open(js, load_master_key(MASTER_KEY, None))
    app = build_admin_app(AdminContext(plane, settings.ingress_base_url, None, 300, poll_store=PollStore(redis)))
    mount_console(app, console_context(settings, plane, PollStore(redis), nc))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}/console"
    try:
        started = time.perf_counter()
        await seed(plane, count)
        print(f"{count} connectors stored in {time.perf_counter() - started:.1f} s")
        token, _ = await plane.create_key(None, list(SCOPES), "bench", Actor("bench"))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(f"{base}/sign-in", data={"key": token}, allow_redirects=False) as response:
                assert response.status == 303, response.status
            await timed(session, f"{base}/connectors", 5)  # warm-up
            report(
                "connectors, sort=state, page 2", await timed(session, f"{base}/connectors?sort=state&page=2", requests)
            )
            report(
                "connectors, q=hook-09, state=active",
                await timed(session, f"{base}/connectors?q=hook-09&state=active", requests),
            )
            if args.events:
                await events_listing(nc, session, base, args)
    finally:
        await runner.cleanup()
        await nc.close()
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connectors", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_000_000, help="events stored for the Events page (0: none)")
    parser.add_argument("--fill-cap", type=float, default=1_200.0, help="seconds the event fill may take")
    args = parser.parse_args()
    asyncio.run(main(args.connectors, args.requests, args))
