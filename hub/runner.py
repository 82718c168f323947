"""`connector-hub run`: load specs, start embedded servers where no URL is set, connect, ensure the
streams, serve the roles asked for (ingress, policy and dispatch consumers), and on SIGINT/SIGTERM
stop in order (the consumers stop taking messages, in-flight requests and handlers finish first).

Specs and secrets are checked before anything starts, so a bad configuration fails fast with every
problem listed. Embedded servers run in their own session and die with the hub even if it crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import nats.errors
import orjson
from aiohttp import web
from nats.aio.client import Client as NATS
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.keyhosts import allow_key_hosts
from events.streams import ensure_streams
from hub import embedded
from hub.admin.app import build_admin_app
from hub.admin.routes import AdminContext
from hub.context import HubContext
from hub.control.buckets import SECRETS_BUCKET, SPECS_BUCKET, kv_bucket
from hub.control.plane import Actor, ControlPlane, InvalidSpec
from hub.control.reporter import StatusReporter
from hub.control.sealing import MasterKey, MasterKeyError, load_master_key
from hub.control.secretstore import SecretCache
from hub.control.specstore import RevisionConflict, SpecDocument
from hub.control.watcher import ConfigWatcher, LiveConfiguration
from hub.dedupe import DedupeStore
from hub.errors import ConfigError, Problem
from hub.gate.catalog import GateCatalog, build_catalog
from hub.gate.consumers import Gate, start_gate
from hub.ingest import Ingestor
from hub.ingress.app import build_app
from hub.ingress.health import INSECURE_WARNING, add_ops_routes
from hub.keys import KeyCache
from hub.live import Live
from hub.metrics import HubMetrics
from hub.poll.scheduler import PollScheduler
from hub.poll.sources import PollSource, build_sources
from hub.poll.store import PollStore
from hub.publisher import Publisher
from hub.registry import ConnectorRegistry, build_registry
from hub.settings import Settings
from schemas.loader import LoadedSpecs, SpecLoadError, load_specs

if TYPE_CHECKING:
    from hub.workers import WorkerLink

log = logging.getLogger(__name__)

ROLES = ("ingress", "poller", "policy", "dispatch", "admin")
SHUTDOWN_GRACE_S = 10.0
FIRST_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the hub's NATS and Valkey are, and the PIDs of those it started itself."""

    nats_url: str
    redis_url: str
    embedded_pids: dict[str, int]


@dataclass(frozen=True, slots=True)
class Configuration:
    """What the specs of `HUB_CONNECTORS` configure: the ingress's connectors and the gate's catalog."""

    registry: ConnectorRegistry
    catalog: GateCatalog
    sources: list[PollSource]
    specs: LoadedSpecs = field(default_factory=lambda: LoadedSpecs([], []))


def load_configuration(settings: Settings, roles: Sequence[str] = ROLES) -> Configuration:
    """The specs of `HUB_CONNECTORS`, or ConfigError listing every problem.

    Webhook connectors (and their secrets) are resolved only for the ingress role, poll sources
    (and their credentials) only for the poller role: a process that runs only the gate consumers
    needs the routes and policies, not the secrets.
    """
    allow_key_hosts(settings.key_fetch_allowed_hosts)  # for every connector this process validates from now on
    if settings.connectors is None:
        log.warning("HUB_CONNECTORS is unset: no connectors loaded, every webhook will be 404")
        return Configuration(ConnectorRegistry([]), build_catalog(LoadedSpecs([], [])), [])
    try:
        specs = load_specs(settings.connectors)
    except SpecLoadError as exc:
        raise ConfigError([Problem("", e.field, str(e)) for e in exc.errors]) from None
    catalog = build_catalog(specs)
    for tenant in catalog.tenants_without_policy():
        log.warning("tenant has routes but no Policy document: every route is denied", extra={"tenant": tenant})
    problems: list[Problem] = []
    registry = ConnectorRegistry([])
    sources: list[PollSource] = []
    try:
        if "ingress" in roles:
            registry = load_registry(settings, specs)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        if "poller" in roles:
            sources = build_sources(specs.connectors, publish_timeout_s=settings.publish_timeout.total_seconds())
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return Configuration(registry, catalog, sources, specs)


def load_registry(settings: Settings, specs: LoadedSpecs) -> ConnectorRegistry:
    """The enabled webhook connectors, or ConfigError listing every problem."""
    registry, notes = build_registry(
        specs.connectors,
        publish_timeout_s=settings.publish_timeout.total_seconds(),
        claim_ttl_s=settings.claim_ttl.total_seconds(),
        duplicate_window_s=settings.duplicate_window.total_seconds(),
    )
    for note in notes:
        log.warning(note)
    log.info("connectors loaded", extra={"count": len(registry), "source": str(settings.connectors)})
    return registry


@contextlib.contextmanager
def servers(settings: Settings) -> Iterator[Endpoints]:
    """External URLs as given, else embedded servers under HUB_DATA_DIR, stopped on exit."""
    started: list[embedded.RunningServer] = []
    try:
        nats_url, redis_url = settings.nats_url, settings.redis_url
        if nats_url is None:
            server = embedded.start_nats(settings.data_dir, sync_interval=settings.nats_sync_interval)
            started.append(server)
            nats_url = server.url
            log.info("HUB_NATS_URL is unset: started embedded nats-server", extra=_described(server))
        if redis_url is None:
            server = embedded.start_valkey(settings.data_dir)
            started.append(server)
            redis_url = server.url
            log.info("HUB_REDIS_URL is unset: started embedded valkey-server", extra=_described(server))
        yield Endpoints(nats_url, redis_url, {server.name: server.pid for server in started})
    finally:
        for server in reversed(started):
            server.stop()
            log.info("embedded server stopped", extra={"server": server.name, "pid": server.pid})


def _described(server: embedded.RunningServer) -> dict[str, object]:
    return {"url": server.url, "pid": server.pid, "data_dir": str(server.data_dir)}


def endpoints_file(data_dir: Path) -> Path:
    """Where a running hub records its endpoints, for `tail` and `send-test` on the same machine."""
    return data_dir / "endpoints.json"


def running_hub_endpoints(data_dir: Path) -> dict[str, Any] | None:
    """The record of the hub running with this data dir, or None (no record, or its process is gone)."""
    try:
        record: dict[str, Any] = orjson.loads(endpoints_file(data_dir).read_bytes())
        os.kill(int(record["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


async def connect_nats(url: str) -> NATS:
    """A NATS connection that reconnects forever (publishes meanwhile fail with 503)."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", extra={"error": f"{type(exc).__name__}: {exc}"})

    client: list[NATS] = []  # set once connected; a disconnect while closing is no news

    async def on_disconnected() -> None:
        if not (client and client[0].is_closed):
            log.warning("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")

    connecting = nats.connect(
        url,
        name="connector-hub",
        connect_timeout=2,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    try:  # nats-py retries a refused first connection forever; a wrong URL must fail start-up instead
        client.append(await asyncio.wait_for(connecting, FIRST_CONNECT_TIMEOUT_S))
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        raise ConfigError([Problem("", "HUB_NATS_URL", f"cannot connect to {url}: {type(exc).__name__}")]) from None
    return client[0]


def connect_redis(url: str, timeout_s: float) -> Redis:
    """A Valkey client that fails fast (no retries, short timeouts): the ingress fails open instead."""
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))


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
    master = master_key(settings)
    nc = await connect_nats(endpoints.nats_url)
    redis = connect_redis(endpoints.redis_url, settings.store_timeout.total_seconds())
    gate: Gate | None = None
    polling: Polling | None = None
    watcher: ConfigWatcher | None = None
    reporter: StatusReporter | None = None
    admin: web.AppRunner | None = None
    try:
        js = nc.jetstream()
        for change in await ensure_streams(js, settings.stream_settings()):
            log.info("stream changed", extra={"change": change})
        plane = await ControlPlane.open(js, master, replicas=settings.stream_replicas)
        if settings.connectors is not None:
            await apply_files(plane, configuration.specs, settings.connectors)
        live = LiveConfiguration.empty()
        context = build_context(settings, live.registry, nc, redis, insecure_no_auth=insecure_no_auth)
        if "poller" in roles:
            polling = Polling.start([], redis, context, settings.poll_lease_ttl.total_seconds())
        reporter = StatusReporter(
            plane.statuses,
            context.activity,
            served=lambda: watcher.served if watcher else [],
            polled=lambda: [(s.tenant, s.name) for s in watcher.polled] if watcher else [],
            poll_store=PollStore(redis) if polling else None,
        )
        watcher = ConfigWatcher(
            settings,
            roles,
            await kv_bucket(js, SPECS_BUCKET),
            await kv_bucket(js, SECRETS_BUCKET),
            SecretCache(master),
            live=live,
            status=reporter.report,
            on_sources=polling.scheduler.replace_sources if polling else None,
        )
        await watcher.start()
        reporter.start()
        _warn_about_bus_limits(live.registry.current, nc.max_payload)
        if "policy" in roles or "dispatch" in roles:
            gate = await start_gate(
                endpoints.nats_url,
                nc,
                redis,
                live.catalog,
                context.metrics.gate,
                policy="policy" in roles,
                dispatch="dispatch" in roles,
            )
        runner = web.AppRunner(
            build_app(context, ingress="ingress" in roles),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_GRACE_S,
        )
        await runner.setup()
        http_url = await _listen(runner, settings.http_host, settings.http_port, reuse_port=worker is not None)
        # The admin port serves /readyz and /metrics in every process (never the public ingress port),
        # and the admin API with the admin role.
        ops = web.Application()
        if "admin" in roles:
            ops = build_admin_app(admin_context(settings, plane, insecure_no_auth, PollStore(redis)))
            if insecure_no_auth:
                log.warning(INSECURE_WARNING)
        add_ops_routes(ops, context)
        admin = web.AppRunner(ops, access_log=None)
        await admin.setup()
        admin_url = await _listen(admin, settings.admin_host, settings.admin_port, reuse_port=worker is not None)
        if worker is None:
            record_endpoints(settings.data_dir, endpoints, http_url, admin_url)
        else:
            worker.report_ready(http_url, admin_url)
        freeze_startup_heap()
        listening = "listening" if worker is None else "worker listening"  # the supervisor says `listening` once
        log.info(listening, extra={"http": http_url, "admin": admin_url, "roles": list(roles)})
        await stopped.wait()
        log.info("stopping: finishing in-flight requests, handlers and poll pages")
        if admin is not None:
            await admin.cleanup()
            admin = None
        await watcher.stop()
        if polling is not None:
            await polling.stop(SHUTDOWN_GRACE_S)
            polling = None
        if gate is not None:
            await gate.stop()
            gate = None
        await runner.cleanup()
        await context.ingestor.drain(settings.store_timeout.total_seconds())
        await context.keys.close()
    finally:
        if admin is not None:
            await admin.cleanup()
        if watcher is not None:
            await watcher.stop()
        if reporter is not None:
            await reporter.stop()
        if polling is not None:
            await polling.stop(0)
        if gate is not None:
            with contextlib.suppress(Exception):  # start-up failed half way; the error propagates
                await gate.stop()
        if worker is None:
            endpoints_file(settings.data_dir).unlink(missing_ok=True)
        with contextlib.suppress(Exception):  # best effort on the way out; the servers stop next
            await nc.drain()
        await redis.aclose()


def freeze_startup_heap() -> None:
    """Collect, then take every object alive now (modules, adapters, schemas, specs: most of the
    heap) out of the cyclic collector's walks.

    Otherwise each full collection walks all of it: under load that measured 55-75 ms every 2-3 s,
    each a stall of every request in flight, and most of the hub's p99 (docs/performance.md).
    Frozen objects are still freed by reference counting; only cycles among them are kept for good.
    """
    gc.collect()
    gc.freeze()


def master_key(settings: Settings) -> MasterKey | None:
    """The secret store's master key from the settings, or ConfigError naming the setting."""
    try:
        value = settings.master_key.get_secret_value() if settings.master_key else None
        return load_master_key(value, settings.master_key_file)
    except MasterKeyError as exc:
        raise ConfigError([Problem("", "HUB_MASTER_KEY", str(exc))]) from None


def admin_context(
    settings: Settings, plane: ControlPlane, insecure_no_auth: bool, poll_store: PollStore
) -> AdminContext:
    """What the admin API needs from the settings (an empty signing key counts as unset)."""
    return AdminContext(
        plane=plane,
        ingress_base_url=settings.ingress_base_url,
        signing_key=(settings.signing_key.get_secret_value() or None) if settings.signing_key else None,
        service_map_ttl_s=max(1, int(settings.service_map_ttl.total_seconds())),
        insecure=insecure_no_auth,
        poll_store=poll_store,
    )


FILE_APPLY_ATTEMPTS = 3


async def apply_files(plane: ControlPlane, specs: LoadedSpecs, source: Path) -> None:
    """Store the documents of HUB_CONNECTORS (the files win over what the store has); every
    instance started with the same files agrees, so concurrent starts settle on one revision."""
    actor = Actor(key_id=f"file:{source}")
    documents: list[SpecDocument] = [*(p.policy for p in specs.policies), *(c.connector for c in specs.connectors)]
    problems: list[Problem] = []
    for document in documents:
        for attempt in range(FILE_APPLY_ATTEMPTS):
            try:
                result = await plane.apply(document, actor)
            except RevisionConflict:  # another instance applied the same files first: compare again
                if attempt + 1 == FILE_APPLY_ATTEMPTS:
                    raise
                continue
            except InvalidSpec as exc:
                problems.extend(exc.problems)
                break
            if result.action != "unchanged":
                log.info("spec stored from HUB_CONNECTORS", extra={"spec": result.label, "action": result.action})
            break
    if problems:
        raise ConfigError(problems)


async def _listen(runner: web.AppRunner, host: str, port: int, *, reuse_port: bool = False) -> str:
    """Start serving the runner's app; its URL. With `reuse_port`, processes that all set it share the port."""
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
    await site.start()
    bound_host, bound_port = runner.addresses[-1][:2]
    return f"http://{bound_host}:{bound_port}"


@dataclass
class Polling:
    """The poll scheduler of this process, running as a task."""

    scheduler: PollScheduler
    task: asyncio.Task[None]

    @classmethod
    def start(cls, sources: Sequence[PollSource], redis: Redis, context: HubContext, lease_ttl_s: float) -> Polling:
        """Schedule every source; runs publish through the same ingestor as the webhooks."""
        scheduler = PollScheduler(
            sources, PollStore(redis), context.ingestor, context.metrics.poll, lease_ttl_s=lease_ttl_s
        )
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


def build_context(
    settings: Settings,
    registry: Live[ConnectorRegistry],
    nc: NATS,
    redis: Redis,
    *,
    insecure_no_auth: bool = False,
) -> HubContext:
    """Wire the ingest path of one hub process."""
    metrics = HubMetrics()
    metrics.connectors.set_function(lambda: len(registry.current))
    js = nc.jetstream()
    claim_ttl_s = settings.claim_ttl.total_seconds()
    dedupe = DedupeStore(redis, metrics, claim_ttl_s=claim_ttl_s)
    ingestor = Ingestor(dedupe, Publisher(nc, metrics), metrics, claim_ttl_s=claim_ttl_s)
    return HubContext(
        registry=registry,
        ingestor=ingestor,
        metrics=metrics,
        nats=nc,
        js=js,
        redis=redis,
        keys=KeyCache.from_settings(settings),
        insecure_no_auth=insecure_no_auth,
    )


ENVELOPE_OVERHEAD_BYTES = 16 * 1024
"""Room for the envelope's attributes and headers around the embedded body."""


def _warn_about_bus_limits(registry: ConnectorRegistry, max_payload: int) -> None:
    for connector in registry:
        if connector.max_body_bytes + ENVELOPE_OVERHEAD_BYTES > max_payload:
            log.warning(
                "maxBodyBytes does not fit the NATS server's max_payload: larger bodies will be refused (413)",
                extra={"connector": connector.label, "max_body_bytes": connector.max_body_bytes, "nats": max_payload},
            )


def record_endpoints(
    data_dir: Path, endpoints: Endpoints, http_url: str, admin_url: str | None, worker_pids: Sequence[int] = ()
) -> None:
    """Write this process's endpoints record; replaced whole, so a reader never sees half of it
    (a supervisor rewrites it when a worker restarts)."""
    path = endpoints_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "nats_url": endpoints.nats_url,
        "redis_url": endpoints.redis_url,
        "http_url": http_url,
        "admin_url": admin_url,
        "pid": os.getpid(),
        "embedded_pids": endpoints.embedded_pids,
        "worker_pids": list(worker_pids),
    }
    staged = path.with_name(f".{path.name}.{os.getpid()}")
    staged.write_bytes(orjson.dumps(record))
    staged.replace(path)


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
