"""The ingress aiohttp application: routes only; connections are opened by the runner."""

from __future__ import annotations

from aiohttp import web

from hub.ingest.context import HUB, HubContext
from hub.ingress.handler import handle_webhook
from hub.ingress.health import healthz

HOOK_PATH = "/hooks/{tenant}/{connector}"


def build_app(context: HubContext, *, ingress: bool = True) -> web.Application:
    """Routes for webhooks (POST, and GET for providers whose handshake is a GET) and `/healthz`.

    This port is public: `/readyz` and `/metrics`, which describe the hub's tenants, are on the admin
    port (`hub.ingress.health.add_ops_routes`). Without the ingress role, only `/healthz` is served.
    """
    app = web.Application(
        client_max_size=1024,  # bodies are streamed under each connector's own cap
        handler_args={"auto_decompress": False},  # body.py inflates, strictly and under the cap
    )
    app[HUB] = context
    if ingress:
        app.router.add_post(HOOK_PATH, handle_webhook)
        app.router.add_get(HOOK_PATH, handle_webhook, allow_head=False)
    app.router.add_get("/healthz", healthz)
    return app
