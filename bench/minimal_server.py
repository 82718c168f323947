"""The benchmark's baselines: the least an ingest endpoint can do and still promise durability.

It reads the body, publishes it to JetStream with a `Nats-Msg-Id`, awaits the PubAck and answers
202. No verification, no dedupe store, no envelope. With `--trivial` it answers 202 without even
reading the body: the ceiling of aiohttp itself on this machine. `bench/ingest.py` starts it as a
subprocess (so it does not share the load generator's process), once per process it measures;
`--reuse-port` lets several share one port, as `connector-hub run --workers N` does:

    python bench/minimal_server.py --nats-url nats://127.0.0.1:4222 --port 9000 [--trivial] [--reuse-port]

It runs on uvloop when that is installed, as the hub does, so the comparison is of the work done,
not of the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import nats
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

NATS_CONN = web.AppKey("nats", NATS)
JETSTREAM = web.AppKey("js", JetStreamContext)
SUBJECT_PREFIX = "bench.minimal"
ID_HEADER = "X-Bench-Id"
PUBLISH_TIMEOUT_S = 5.0


async def ingest(request: web.Request) -> web.Response:
    """Body -> JetStream (with PubAck) -> 202."""
    body = await request.read()
    msg_id = request.headers.get(ID_HEADER) or uuid.uuid4().hex
    subject = f"{SUBJECT_PREFIX}.{request.match_info['tenant']}.{request.match_info['connector']}"
    await request.app[JETSTREAM].publish(subject, body, timeout=PUBLISH_TIMEOUT_S, headers={"Nats-Msg-Id": msg_id})
    return web.Response(status=202, body=b'{"accepted":1}', content_type="application/json")


async def trivial(request: web.Request) -> web.Response:
    """202 without reading the body."""
    return web.Response(status=202, body=b'{"accepted":1}', content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app(nats_url: str, *, answer_only: bool) -> web.Application:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    if answer_only:
        app.router.add_post("/hooks/{tenant}/{connector}", trivial)
        return app

    async def connection(app: web.Application) -> AsyncIterator[None]:
        nc = await nats.connect(nats_url, name="bench-minimal", connect_timeout=2)
        app[NATS_CONN], app[JETSTREAM] = nc, nc.jetstream()
        yield
        await nc.drain()

    app.cleanup_ctx.append(connection)
    app.router.add_post("/hooks/{tenant}/{connector}", ingest)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--trivial", action="store_true", help="answer 202 without reading the body")
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other processes")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        build_app(args.nats_url, answer_only=args.trivial),
        host=args.host,
        port=args.port,
        reuse_port=args.reuse_port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
