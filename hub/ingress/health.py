"""`/healthz` (the process answers), `/readyz` (NATS, Valkey and the streams are there), `/metrics`.

`/healthz` is on the public ingress port for load balancers and says nothing else. `/readyz` and
`/metrics` describe the hub (metrics are labelled with every tenant and connector) and are served on
the admin port only (`add_ops_routes`), in every process whatever its roles; `/readyz` gives counts,
never names.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from events.streams import missing_streams
from hub.ingest.context import HUB, HubContext

READY_CHECK_TIMEOUT_S = 1.0
INSECURE_WARNING = "the admin API runs with --insecure-no-auth: anyone who reaches it can change every tenant"

log = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """The process is up."""
    return _json({"status": "ok"}, 200)


async def readyz(request: web.Request) -> web.Response:
    """Ready when NATS and Valkey answer and every stream exists; says which check failed."""
    context = request.app[HUB]
    checks = {"nats": "ok", "valkey": "ok", "streams": "ok"}
    if not context.nats.is_connected:
        checks["nats"] = "disconnected"
        checks["streams"] = "unknown"
    else:
        try:
            missing = await asyncio.wait_for(missing_streams(context.js), READY_CHECK_TIMEOUT_S)
            if missing:
                checks["streams"] = "missing: " + ", ".join(missing)
        except (nats.errors.Error, TimeoutError) as exc:
            checks["streams"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(context.redis.ping(), READY_CHECK_TIMEOUT_S)
    except (RedisError, TimeoutError) as exc:
        checks["valkey"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"ready": ready, "checks": checks}
    warnings: list[str] = []
    if shadow := len(context.registry.current.in_shadow_mode()):
        warnings.append(f"{shadow} connector(s) in shadow verification mode: unverified events are accepted")
    if context.insecure_no_auth:
        warnings.append(INSECURE_WARNING)
        log.warning(INSECURE_WARNING)
    if warnings:  # ready, but an operator must know: unverified requests or an unauthenticated admin API
        body["warnings"] = warnings
    return _json(body, 200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    body = generate_latest(request.app[HUB].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_ops_routes(app: web.Application, context: HubContext) -> None:
    """Serve `/readyz` and `/metrics` from `app` (the admin port's application)."""
    app[HUB] = context
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


def _json(payload: object, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")
