"""The console as an aiohttp sub-application under `/console/` of the admin port's app, and `/`
sending browsers there."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from hub.console import (
    audit_page,
    connector_page,
    connectors_page,
    deadletters_page,
    event_page,
    events_page,
    jobs_page,
    keys_page,
    rejected_page,
    replay_page,
    retention_page,
    signin,
    trash_page,
)
from hub.console.call import CONSOLE, page, redirect
from hub.console.context import ConsoleContext, template_environment
from hub.console.security import SECURITY_HEADERS, security_headers
from hub.console.session import SessionCodec, signing_secret
from hub.control.apikeys import SCOPES
from hub.control.checks import ServingLimits
from hub.control.plane import ControlPlane
from hub.control.rates import RateStore
from hub.gate.breaker import BreakerState
from hub.poll.store import PollStore
from hub.settings import Settings

CATALOG_READ, INSTANCE_MANAGE, OPERATION_INVOKE, OPERATION_READ, CREDENTIAL_MANAGE = SCOPES
PREFIX = "/console"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}
CONNECTOR = "/connectors/{tenant}/{name}"
KEPT = "/rejected/{owner}/{connector}/{seq}"
"""Not `{tenant}`: the page checks the reach itself, so that another tenant's kept request gets the
same 404 page as a missing one."""


def console_context(
    settings: Settings,
    plane: ControlPlane,
    poll_store: PollStore | None,
    nc: NATS,
    redis: Redis | None = None,
    breakers: Callable[[], Mapping[str, BreakerState] | None] = lambda: None,
) -> ConsoleContext:
    """What the console needs from the hub's settings and connections (without Valkey: no retry of
    a rejected request and no rates)."""
    return ConsoleContext(
        plane=plane,
        js=nc.jetstream(),
        poll_store=poll_store,
        ingress_base_url=settings.ingress_base_url,
        limits=ServingLimits.of(settings),
        codec=SessionCodec(signing_secret(settings)),
        templates=template_environment(),
        nc=nc,
        settings=settings,
        redis=redis,
        rates=RateStore(redis) if redis is not None else None,
        breakers=breakers,
    )


def mount_console(app: web.Application, console: ConsoleContext) -> None:
    """Serve the console at `/console/` of `app`, and redirect `/` there."""
    app.add_subapp(PREFIX, build_console_app(console))
    app.router.add_get("/", _to_console)


async def _to_console(_: web.Request) -> web.StreamResponse:
    response = redirect(f"{PREFIX}/")
    response.headers.update(SECURITY_HEADERS)
    return response


def build_console_app(console: ConsoleContext) -> web.Application:
    """Every console page and form, behind the security headers."""
    app = web.Application(middlewares=[security_headers])
    app[CONSOLE] = console
    get, post = app.router.add_get, app.router.add_post
    get("/", _home)
    get("/sign-in", signin.sign_in_form)
    post("/sign-in", signin.sign_in)
    post("/sign-out", signin.sign_out)
    get("/connectors", page(connectors_page.connectors_page, CATALOG_READ))
    get(CONNECTOR, page(connector_page.connector_page, CATALOG_READ))
    get(CONNECTOR + "/status", page(connector_page.status_fragment, OPERATION_READ))
    post(CONNECTOR + "/secrets/{secret}", page(connector_page.set_secret, CREDENTIAL_MANAGE, form=True))
    post(CONNECTOR + "/enabled", page(connector_page.set_enabled, INSTANCE_MANAGE, form=True))
    post(CONNECTOR + "/poll", page(connector_page.poll_now, OPERATION_INVOKE, form=True))
    get(CONNECTOR + "/delete", page(trash_page.delete_confirm, INSTANCE_MANAGE))
    post(CONNECTOR + "/delete", page(trash_page.delete_connector, INSTANCE_MANAGE, form=True))
    post(CONNECTOR + "/restore", page(trash_page.restore_connector, INSTANCE_MANAGE, form=True))
    get("/deleted", page(trash_page.trash_page, CATALOG_READ))
    get("/retention", page(retention_page.retention_page, OPERATION_READ))
    get("/keys", page(keys_page.keys_page, CREDENTIAL_MANAGE))
    post("/keys", page(keys_page.create_key, CREDENTIAL_MANAGE, form=True))
    post("/keys/{key}/revoke", page(keys_page.revoke_key, CREDENTIAL_MANAGE, form=True))
    get("/audit", page(audit_page.audit_page, OPERATION_READ))
    get("/events", page(events_page.events_page, OPERATION_READ))
    get("/events/newer", page(events_page.newer_rows, OPERATION_READ))
    get("/events/{tenant}/{name}/{event}", page(event_page.event_page, OPERATION_READ))
    get("/replay", page(replay_page.replay_page, OPERATION_INVOKE))
    post("/replay", page(replay_page.start_replay, OPERATION_INVOKE, form=True))
    get("/jobs/{job}", page(jobs_page.job_page, OPERATION_READ))
    get("/jobs/{job}/progress", page(jobs_page.job_progress, OPERATION_READ))
    post("/jobs/{job}/cancel", page(jobs_page.cancel_job, OPERATION_INVOKE, form=True))
    get("/deadletters", page(deadletters_page.deadletters_page, OPERATION_READ))
    get("/deadletters/{seq}", page(deadletters_page.deadletter_page, OPERATION_READ))
    post("/deadletters/redrive", page(deadletters_page.redrive_many, OPERATION_INVOKE, form=True))
    post("/deadletters/discard", page(deadletters_page.discard_many, OPERATION_INVOKE, form=True))
    post("/deadletters/{seq}/redrive", page(deadletters_page.redrive_one, OPERATION_INVOKE, form=True))
    post("/deadletters/{seq}/discard", page(deadletters_page.discard_one, OPERATION_INVOKE, form=True))
    get("/rejected", page(rejected_page.rejected_page, OPERATION_READ))
    get(KEPT, page(rejected_page.kept_page, OPERATION_READ))
    post(KEPT + "/retry", page(rejected_page.retry_kept, OPERATION_INVOKE, form=True))
    for name, body in _static_files().items():
        get(f"/static/{name}", _static(body, STATIC_TYPES[name[name.rindex(".") :]]))
    return app


async def _home(_: web.Request) -> web.StreamResponse:
    return redirect(f"{PREFIX}/connectors")


def _static_files() -> dict[str, bytes]:
    """The packaged CSS and script, read once (they ship in the wheel; nothing comes from the network)."""
    folder = resources.files("hub.console").joinpath("static")
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name[f.name.rfind(".") :] in STATIC_TYPES}


def _static(body: bytes, content_type: str) -> Handler:
    async def serve(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type=content_type, headers={"Cache-Control": "public, max-age=3600"})

    return serve
