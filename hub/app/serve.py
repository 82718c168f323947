"""`connector-hub run`: check the configuration, start embedded servers where no URL is set, then
serve the roles asked for until SIGINT or SIGTERM, and stop them in the reverse order they started.

Start-up order (each step a context manager of hub.app.roles, so teardown is written once): the
connections, the control plane (streams, buckets, the spec files stored), the ingest path, the
poller, the configuration watcher with its status reporter, the gate consumers, the ingress's HTTP
listener, the admin port, and the endpoints record. Specs and secrets are checked before anything
starts, so a bad configuration fails fast with every problem listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hub.app import roles as role
from hub.app.config import ROLES, Configuration, load_configuration, master_key
from hub.app.connections import Endpoints, servers
from hub.ingress.app import build_app
from hub.ingress.deadlines import Deadlines
from hub.runtime import tracing
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.app.workers import WorkerLink

log = logging.getLogger(__name__)


async def serve(
    settings: Settings,
    configuration: Configuration,
    endpoints: Endpoints,
    roles: Sequence[str] = ROLES,
    *,
    insecure_no_auth: bool = False,
    worker: WorkerLink | None = None,
) -> None:
    """Run the roles until SIGINT or SIGTERM.

    A worker of `run --workers N` shares its ports with its siblings (SO_REUSEPORT) and reports to
    its supervisor when it listens; the supervisor, not the worker, keeps the endpoints record.
    """
    stopped = _stop_on_signals()  # before anything says "listening": a SIGTERM from then on stops gracefully
    shared = worker is not None
    async with contextlib.AsyncExitStack() as stack:
        tracing.configure(settings.tracing, settings.otlp_endpoint)  # once per process (each worker its own)
        stack.callback(tracing.shutdown)  # last out: the spans of the stop are exported too
        process = await role.start_process(
            stack, settings, configuration, endpoints, roles, insecure_no_auth=insecure_no_auth
        )
        ingress = build_app(process.context, ingress="ingress" in roles)
        http_url = await stack.enter_async_context(
            role.listening(
                ingress,
                settings.http_host,
                settings.http_port,
                reuse_port=shared,
                shutdown_timeout=role.SHUTDOWN_GRACE_S,
                deadlines=Deadlines.from_settings(settings),
                setting="HUB_HTTP_PORT",
            )
        )
        # the webhook URLs the admin API and the console show: the port bound, also for HUB_HTTP_PORT=0
        shown = settings if settings.public_url else settings.model_copy(update={"public_url": http_url})
        ops = role.ops_app(
            shown, roles, process.plane, process.context, process.conn.redis, insecure_no_auth, process.gate
        )
        admin_url = await stack.enter_async_context(
            role.listening(ops, settings.admin_host, settings.admin_port, reuse_port=shared, setting="HUB_ADMIN_PORT")
        )
        stack.enter_context(role.announced(settings, endpoints, worker, http_url, admin_url))
        freeze_startup_heap()
        listening = "worker listening" if shared else "listening"  # the supervisor says `listening` once
        log.info(listening, extra={"http": http_url, "admin": admin_url, "roles": list(roles)})
        await stopped.wait()
        log.info("stopping: finishing in-flight requests, handlers and poll pages")


def freeze_startup_heap() -> None:
    """Collect, then take every object alive now (modules, adapters, schemas, specs: most of the
    heap) out of the cyclic collector's walks.

    Otherwise each full collection walks all of it: under load that measured 55-75 ms every 2-3 s,
    each a stall of every request in flight, and most of the hub's p99 (docs/performance.md).
    Frozen objects are still freed by reference counting; only cycles among them are kept for good.
    """
    gc.collect()
    gc.freeze()


def _stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets; a signal during start-up stops the hub once it has started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run(
    settings: Settings,
    roles: Sequence[str] = ROLES,
    *,
    insecure_no_auth: bool = False,
    worker: WorkerLink | None = None,
) -> None:
    """Load, start, serve; ConfigError and embedded-server errors propagate to the CLI."""
    configuration = load_configuration(settings, roles)
    master_key(settings)  # a bad key fails before any server starts
    with servers(settings) as endpoints, asyncio.Runner(loop_factory=event_loop_factory()) as loop:
        loop.run(serve(settings, configuration, endpoints, roles, insecure_no_auth=insecure_no_auth, worker=worker))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency on Linux and macOS), else asyncio's.

    The hub's hot paths are socket reads and writes, callbacks and timers; uvloop runs those in C.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
