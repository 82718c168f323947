"""`/healthz` (the process answers), `/readyz` (NATS, Valkey and the streams are there), `/metrics`."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from events.streams import missing_streams
from hub.context import HUB

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
    warnings = [
        f"connector {label} is in shadow verification mode" for label in context.registry.current.in_shadow_mode()
    ]
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


def _json(payload: object, status: int) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")
