"""One context manager per part of a running hub: each starts its part on entry and stops it on
exit, so `serve` enters them in order and an `AsyncExitStack` stops them in reverse.

The reverse order carries the durability guarantee: everything that publishes (the ingress's
requests, poll pages, gate handlers) has finished before the ingest path drains its done marks, and
that drain runs before NATS is drained and Valkey closed (hub.app.connections). A part whose start
fails leaves the parts started before it to be stopped the same way. A part that must stop faster
when the hub is failing than when it is stopping (poll runs, gate handlers) tells the two apart by
whether an exception is on its way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from events.streams import ensure_streams
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.app.config import Configuration, apply_files, master_key
from hub.app.connections import Connections, Endpoints, connected
from hub.app.endpoints import endpoints_file, record_endpoints
from hub.app.metrics import HubMetrics
from hub.console.app import console_context, mount_console
from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, kv_bucket
from hub.control.checks import ServingLimits
from hub.control.plane import ControlPlane
from hub.control.rates import RateStore
from hub.control.reporter import StatusReporter
from hub.control.sealing import MasterKey
from hub.control.secretstore import SecretCache
from hub.control.trash import purging
from hub.control.watcher import ConfigWatcher, LiveConfiguration
from hub.errors import ConfigError, Problem
from hub.gate.catalog import GateCatalog
from hub.gate.consumers import Gate, start_gate
from hub.ingest.activity import Activity
from hub.ingest.connectors import ConnectorRegistry
from hub.ingest.context import HubContext
from hub.ingest.dedupe import DedupeStore
from hub.ingest.ingestor import Ingestor
from hub.ingest.keycache import KeyCache
from hub.ingest.publisher import Publisher
from hub.ingress.deadlines import DEADLINES, Deadlines
from hub.ingress.health import INSECURE_WARNING, add_ops_routes
from hub.ingress.rejected import RejectedMetrics, RejectedRecorder
from hub.jobs.kind import JobServices
from hub.jobs.runner import job_runner
from hub.poll.metrics import PollMetrics
from hub.poll.scheduler import PollScheduler, recovery_bound_note
from hub.poll.sources import PollSource
from hub.poll.store import PollStore
from hub.runtime.egress import Lookup, system_lookup
from hub.runtime.live import Live
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.app.workers import WorkerLink

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0


def build_context(
    settings: Settings,
    registry: Live[ConnectorRegistry],
    nc: NATS,
    redis: Redis,
    *,
    metrics: HubMetrics | None = None,
    insecure_no_auth: bool = False,
) -> HubContext:
    """Wire the ingest path of one hub process (the one way webhooks and poll pages enter the bus)."""
    metrics = metrics or HubMetrics()
    metrics.connectors.set_function(lambda: len(registry.current))
    claim_ttl_s = settings.claim_ttl.total_seconds()
    dedupe = DedupeStore(redis, metrics, claim_ttl_s=claim_ttl_s)
    publisher = Publisher(nc, metrics, duplicate_window_s=settings.duplicate_window.total_seconds())
    ingestor = Ingestor(dedupe, publisher, metrics, claim_ttl_s=claim_ttl_s)
    return HubContext(
        registry=registry,
        ingestor=ingestor,
        metrics=metrics,
        nats=nc,
        js=nc.jetstream(),
        redis=redis,
        keys=KeyCache.from_settings(settings),
        insecure_no_auth=insecure_no_auth,
        rejected=RejectedRecorder(nc, RejectedMetrics(metrics.registry)),
    )


@contextlib.asynccontextmanager
async def ingest_path(settings: Settings, context: HubContext) -> AsyncIterator[HubContext]:
    """The ingest path; on exit its done marks are drained (before Valkey closes) and the key cache closed."""
    try:
        yield context
    finally:
        await context.ingestor.drain(settings.store_timeout.total_seconds())
        await context.keys.close()


async def control_plane(
    settings: Settings, conn: Connections, configuration: Configuration, master: MasterKey | None
) -> ControlPlane:
    """The streams ensured, the control plane's buckets opened, and the spec files stored."""
    js = conn.nc.jetstream()
    for change in await ensure_streams(js, settings.stream_settings()):
        log.info("stream changed", extra={"change": change})
    plane = await ControlPlane.open(js, master, replicas=settings.stream_replicas)
    if settings.connectors is not None:
        await apply_files(plane, configuration.specs, settings.connectors)
    return plane


@dataclass
class Polling:
    """The poll scheduler of this process, running as a task."""

    scheduler: PollScheduler
    task: asyncio.Task[None]

    @classmethod
    def start(
        cls,
        sources: Sequence[PollSource],
        store: PollStore,
        ingestor: Ingestor,
        metrics: PollMetrics,
        lease_ttl_s: float,
    ) -> Polling:
        """Schedule every source; runs publish through the same ingestor as the webhooks."""
        scheduler = PollScheduler(sources, store, ingestor, metrics, lease_ttl_s=lease_ttl_s)
        log.info("poll scheduler started", extra={"sources": len(sources)})
        return cls(scheduler, asyncio.create_task(scheduler.run(), name="poll scheduler"))

    async def stop(self, grace_s: float) -> None:
        """Let runs finish their current page within `grace_s`, then cancel what is left."""
        self.scheduler.stop()
        done, _ = await asyncio.wait({self.task}, timeout=grace_s)
        if not done:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def polling(
    settings: Settings, redis: Redis, context: HubContext, metrics: PollMetrics
) -> AsyncIterator[Polling]:
    """The poller role, with no sources until the watcher hands it some; a stopping hub lets runs
    finish their page, a failing one does not wait."""
    if note := recovery_bound_note(settings.poll_lease_ttl.total_seconds(), settings.claim_ttl.total_seconds()):
        log.warning(note)
    running = Polling.start([], PollStore(redis), context.ingestor, metrics, settings.poll_lease_ttl.total_seconds())
    try:
        yield running
    except BaseException:
        await running.stop(0)
        raise
    await running.stop(SHUTDOWN_GRACE_S)


@dataclass
class Watching:
    """The configuration watcher and the status reporter that publishes what it finds."""

    watcher: ConfigWatcher | None = None
    reporter: StatusReporter | None = None


@contextlib.asynccontextmanager
async def watching(
    settings: Settings,
    roles: Sequence[str],
    plane: ControlPlane,
    conn: Connections,
    live: LiveConfiguration,
    context: HubContext,
    poller: Polling | None,
    master: MasterKey | None,
) -> AsyncIterator[ConfigWatcher]:
    """Serve what the spec store holds: build this process's part of every connector, follow changes,
    and report each connector's state; on exit stop following, then write the last statuses."""
    parts = Watching()
    parts.reporter = StatusReporter(
        plane.statuses,
        context.activity,
        served=lambda: parts.watcher.served if parts.watcher else [],
        polled=lambda: [(s.tenant, s.name) for s in parts.watcher.polled] if parts.watcher else [],
        poll_store=PollStore(conn.redis) if poller else None,
        rates=RateStore(conn.redis),
        certification_period_s=settings.certification_period.total_seconds(),
    )
    js = conn.nc.jetstream()
    parts.watcher = ConfigWatcher(
        settings,
        roles,
        await kv_bucket(js, SPECS_BUCKET),
        await kv_bucket(js, SECRETS_BUCKET),
        SecretCache(master),
        live=live,
        status=parts.reporter.report,
        on_sources=poller.scheduler.replace_sources if poller else None,
    )
    try:
        await parts.watcher.start()
        parts.reporter.start()
        yield parts.watcher
    finally:
        await parts.watcher.stop()
        await parts.reporter.stop()


@contextlib.asynccontextmanager
async def gate(
    nats_url: str,
    conn: Connections,
    catalog: Live[GateCatalog],
    metrics: HubMetrics,
    roles: Sequence[str],
    lookup: Lookup = system_lookup,
    activity: Activity | None = None,
) -> AsyncIterator[Gate]:
    """The policy and dispatch consumers asked for; on exit they stop fetching and finish their
    handlers. HTTP targets' names are resolved with `lookup` (tests map names to loopback); dead
    letters are counted in `activity` (the connectors' error rate SLO)."""
    started = await start_gate(
        nats_url,
        conn.nc,
        conn.redis,
        catalog,
        metrics.gate,
        policy="policy" in roles,
        dispatch="dispatch" in roles,
        lookup=lookup,
        activity=activity,
    )
    try:
        yield started
    except BaseException:
        with contextlib.suppress(Exception):  # the hub is failing; that error is the one to report
            await started.stop()
        raise
    await started.stop()


@contextlib.asynccontextmanager
async def listening(
    app: web.Application,
    host: str,
    port: int,
    *,
    reuse_port: bool,
    shutdown_timeout: float = 60.0,
    deadlines: Deadlines | None = None,
    setting: str = "the port",
) -> AsyncIterator[str]:
    """Serve an app on host:port (shared with sibling workers when `reuse_port`); its URL. On exit
    the listener closes and requests in flight finish within `shutdown_timeout`. Connections idle or
    slow past `deadlines` (default: `Deadlines()`, the settings' defaults) are closed. A port that
    cannot be bound is a ConfigError naming `setting`."""
    deadlines = deadlines or Deadlines()
    app[DEADLINES] = deadlines
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        keepalive_timeout=deadlines.keepalive_s,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                [Problem("", setting, f"{setting}: cannot listen on {host}:{port}: {exc.strerror}")]
            ) from None
        bound_host, bound_port = runner.addresses[-1][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()


def ops_app(
    settings: Settings,
    roles: Sequence[str],
    plane: ControlPlane,
    context: HubContext,
    redis: Redis,
    insecure_no_auth: bool,
    gate: Gate | None = None,
) -> web.Application:
    """The admin port's app: `/readyz` and `/metrics` in every process (never on the public ingress
    port), and the admin API and the console with the admin role (the console shows `gate`'s breakers)."""
    ops = web.Application()
    if "admin" in roles:
        ops = build_admin_app(admin_context(settings, plane, insecure_no_auth, PollStore(redis), context.nats, redis))
        breakers = gate.breaker_states if gate is not None else lambda: None
        mount_console(ops, console_context(settings, plane, PollStore(redis), context.nats, redis, breakers))
        if insecure_no_auth:
            log.warning(INSECURE_WARNING)
    add_ops_routes(ops, context)
    return ops


def admin_context(
    settings: Settings,
    plane: ControlPlane,
    insecure_no_auth: bool,
    poll_store: PollStore,
    nc: NATS | None = None,
    redis: Redis | None = None,
) -> AdminContext:
    """What the admin API needs from the settings (an empty signing key counts as unset)."""
    return AdminContext(
        plane=plane,
        ingress_base_url=settings.ingress_base_url,
        signing_key=(settings.signing_key.get_secret_value() or None) if settings.signing_key else None,
        service_map_ttl_s=max(1, int(settings.service_map_ttl.total_seconds())),
        insecure=insecure_no_auth,
        poll_store=poll_store,
        limits=ServingLimits.of(settings),
        nc=nc,
        redis=redis,
        settings=settings,
    )


@contextlib.contextmanager
def announced(
    settings: Settings, endpoints: Endpoints, worker: WorkerLink | None, http_url: str, admin_url: str
) -> Iterator[None]:
    """Tell the world where this process listens: the endpoints record (removed on exit), or, for a
    worker of `run --workers N`, its supervisor, which keeps the record."""
    if worker is not None:
        worker.report_ready(http_url, admin_url)
        yield
        return
    record_endpoints(settings.data_dir, endpoints, http_url, admin_url)
    try:
        yield
    finally:
        endpoints_file(settings.data_dir).unlink(missing_ok=True)


@dataclass
class Process:
    """The parts of one hub process below its listeners, as `start_process` started them."""

    conn: Connections
    plane: ControlPlane
    live: LiveConfiguration
    metrics: HubMetrics
    context: HubContext
    poller: Polling | None
    gate: Gate | None


async def start_process(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    configuration: Configuration,
    endpoints: Endpoints,
    roles: Sequence[str],
    *,
    insecure_no_auth: bool = False,
    lookup: Lookup = system_lookup,
) -> Process:
    """Start, on `stack`, what a process with these roles runs below its listeners: the connections,
    the control plane, the ingest path, the poller, the configuration watcher and the gate, serving
    what the spec store holds. The stack stops them in reverse."""
    master = master_key(settings)
    conn = await stack.enter_async_context(connected(settings, endpoints))
    plane = await control_plane(settings, conn, configuration, master)
    live, metrics = LiveConfiguration.empty(), HubMetrics()
    context = build_context(
        settings, live.registry, conn.nc, conn.redis, metrics=metrics, insecure_no_auth=insecure_no_auth
    )
    await stack.enter_async_context(ingest_path(settings, context))
    poller = None
    if "poller" in roles:
        poller = await stack.enter_async_context(polling(settings, conn.redis, context, metrics.poll))
    await stack.enter_async_context(watching(settings, roles, plane, conn, live, context, poller, master))
    _warn_about_bus_limits(live.registry.current, conn.nc.max_payload)
    started_gate = None
    if "policy" in roles or "dispatch" in roles:
        started_gate = await stack.enter_async_context(
            gate(endpoints.nats_url, conn, live.catalog, metrics, roles, lookup, context.activity)
        )
    if "admin" in roles:
        services = JobServices(plane, conn.redis, settings)
        await stack.enter_async_context(job_runner(settings, conn.nc, live.catalog, services))
        await stack.enter_async_context(purging(plane, settings.deleted_retention))
    return Process(conn, plane, live, metrics, context, poller, started_gate)


ENVELOPE_OVERHEAD_BYTES = 16 * 1024
"""Room for the envelope's attributes and headers around the embedded body."""


def _warn_about_bus_limits(registry: ConnectorRegistry, max_payload: int) -> None:
    for connector in registry:
        if connector.max_body_bytes + ENVELOPE_OVERHEAD_BYTES > max_payload:
            log.warning(
                "maxBodyBytes does not fit the NATS server's max_payload: larger bodies will be refused (413)",
                extra={"connector": connector.label, "max_body_bytes": connector.max_body_bytes, "nats": max_payload},
            )
