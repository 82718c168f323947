"""`connector-hub run --workers N`: N processes serving the same ports, under one supervisor.

One Python process saturates one core. With N > 1, `run` becomes a supervisor: it checks the
configuration and the master key as `run` does, starts the embedded servers where no URL is set,
then starts N workers (`python -m hub run` with the same roles and flags, HUB_WORKERS=1, the
servers' URLs and concrete ports). Each worker binds the ingress and admin ports with SO_REUSEPORT,
so the kernel spreads connections across them, and holds its own NATS and Valkey connections; every
role is safe with several instances (leases, shared durable consumers, state in NATS KV). The workers
keep their metrics in a per-run directory, so `/metrics` on the shared admin port answers for all of
them, whichever worker accepts the scrape (hub.app.multiprocess_metrics).

The supervisor keeps the endpoints record (its PID, the shared URLs, the workers' PIDs), restarts a
worker that exits with a capped backoff, and on SIGTERM/SIGINT stops the workers, then the servers.
On Linux a worker gets SIGTERM from the kernel when the supervisor dies, even by SIGKILL.

Internal, not settings: a worker learns it is one from HUB_WORKER_INDEX (its slot, 0..N-1) and
HUB_WORKER_READY_FD (a pipe it writes one JSON line to once it listens).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from hub.app import datadir, multiprocess_metrics, serve
from hub.app.config import load_configuration, master_key
from hub.app.connections import Endpoints, servers
from hub.app.embedded import die_with_parent
from hub.app.endpoints import endpoints_file, record_endpoints
from hub.app.roles import SHUTDOWN_GRACE_S
from hub.errors import EXIT_USAGE, ConfigError, Problem
from hub.runtime.waiting import wait_set
from hub.settings import Settings

log = logging.getLogger(__name__)

WORKER_INDEX_ENV = "HUB_WORKER_INDEX"
READY_FD_ENV = "HUB_WORKER_READY_FD"
SUPERVISOR_SETTINGS = frozenset({"workers", "nats_url", "redis_url", "http_port", "admin_port"})
"""Settings the supervisor gives its workers in their environment (a forwarded flag would win over it)."""
STOP_GRACE_S = SHUTDOWN_GRACE_S + 5.0
"""How long a worker may take to stop after SIGTERM (its in-flight requests, handlers, poll pages)."""
RESTART_DELAY_S = 0.5
RESTART_DELAY_MAX_S = 30.0
STABLE_AFTER_S = 60.0
"""A worker that ran this long before it exited is restarted after the shortest delay again."""


def run(settings: Settings, roles: Sequence[str], flags: Mapping[str, str], *, insecure_no_auth: bool) -> int:
    """`connector-hub run`: one process as always, a supervisor of `settings.workers` workers, or one of those.

    The process or the supervisor holds the data directory before it starts anything (DataDirInUse
    when another hub does); a worker runs under its supervisor's hold.
    """
    if settings.workers > 1:
        with datadir.held(settings.data_dir):
            return supervise(settings, roles, flags, insecure_no_auth=insecure_no_auth)
    worker = WorkerLink.from_environment()
    if worker is not None:
        worker.tag_logs()
    with datadir.held(settings.data_dir) if worker is None else contextlib.nullcontext():
        serve.run(settings, roles, insecure_no_auth=insecure_no_auth, worker=worker)
    return 0


@dataclass(frozen=True, slots=True)
class WorkerLink:
    """A worker's side of its supervisor: its slot, and the pipe it reports readiness on."""

    index: int
    ready_fd: int

    @classmethod
    def from_environment(cls) -> WorkerLink | None:
        """The link a supervisor set up for this process, or None when it runs on its own."""
        if WORKER_INDEX_ENV not in os.environ:
            return None
        try:
            return cls(int(os.environ[WORKER_INDEX_ENV]), int(os.environ[READY_FD_ENV]))
        except (KeyError, ValueError):
            problem = f"internal to `run --workers`: its supervisor sets it with {READY_FD_ENV}"
            raise ConfigError([Problem("", WORKER_INDEX_ENV, problem)]) from None

    def tag_logs(self) -> None:
        """Every log line of this process names its worker: the workers share the supervisor's stderr."""
        for handler in logging.getLogger().handlers:
            handler.addFilter(_WorkerField(self.index))

    def report_ready(self, http_url: str, admin_url: str | None) -> None:
        """Tell the supervisor that this worker listens, and where."""
        with os.fdopen(self.ready_fd, "wb") as pipe:
            pipe.write(orjson.dumps({"http_url": http_url, "admin_url": admin_url}) + b"\n")


class _WorkerField(logging.Filter):
    """Adds `worker: <index>` to every record."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def supervise(settings: Settings, roles: Sequence[str], flags: Mapping[str, str], *, insecure_no_auth: bool) -> int:
    """Check what `run` checks, start the servers, then keep `settings.workers` workers running until
    SIGTERM or SIGINT (exit 0) or until one cannot start (its exit code)."""
    load_configuration(settings, roles)
    master_key(settings)
    with contextlib.ExitStack() as held:  # both ports at once, so that port 0 cannot yield the same one twice
        http_port = _claim_port(held, settings.http_host, settings.http_port, "HUB_HTTP_PORT")
        # every worker serves /readyz and /metrics on the admin port, whatever its roles
        admin_port = _claim_port(held, settings.admin_host, settings.admin_port, "HUB_ADMIN_PORT")
    argv = worker_argv(roles, flags, insecure_no_auth=insecure_no_auth)
    with servers(settings) as endpoints:
        env = os.environ | {
            "HUB_NATS_URL": endpoints.nats_url,
            "HUB_REDIS_URL": endpoints.redis_url,
            "HUB_WORKERS": "1",
            "HUB_HTTP_PORT": str(http_port),
            "HUB_ADMIN_PORT": str(admin_port),
            multiprocess_metrics.MULTIPROC_ENV: str(multiprocess_metrics.prepare(settings.data_dir)),
        }
        supervisor = Supervisor(settings.workers, roles, argv, env, settings.data_dir, endpoints)
        return asyncio.run(supervisor.run())


def worker_argv(roles: Sequence[str], flags: Mapping[str, str], *, insecure_no_auth: bool) -> list[str]:
    """A worker's command line: the supervisor's roles and flags, but for those it sets in the environment."""
    argv = [sys.executable, "-m", "hub", "run", "--role", ",".join(roles)]
    argv += ["--insecure-no-auth"] if insecure_no_auth else []
    for name, value in flags.items():
        if name not in SUPERVISOR_SETTINGS:
            argv += [f"--{name.replace('_', '-')}", value]
    return argv


def _claim_port(held: contextlib.ExitStack, host: str, port: int, setting: str) -> int:
    """Listen on `port` (0: one the OS picks) until `held` closes; the port, or ConfigError if it is taken.

    The workers bind with SO_REUSEPORT, which would let them join another process's listeners (or
    put the admin API on the ingress's port) without an error: this refuses what one process would.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = held.enter_context(socket.socket(family, socket.SOCK_STREAM))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the workers do: TIME_WAIT is no conflict
    try:
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        problem = f"{setting}: cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise ConfigError([Problem("", setting, problem)]) from None
    return int(sock.getsockname()[1])


def restart_delay(failures: int) -> float:
    """The wait before restarting a worker that exited `failures` times in a row before this exit."""
    return min(RESTART_DELAY_MAX_S, RESTART_DELAY_S * 2.0 ** min(failures, 16))  # the cap, without overflow


@dataclass
class _Worker:
    """One worker process, and the read end of its readiness pipe."""

    index: int
    process: asyncio.subprocess.Process
    ready_pipe: io.FileIO
    started_at: float


class Supervisor:
    """Keeps `count` workers running, and the endpoints record true, until told to stop."""

    def __init__(
        self,
        count: int,
        roles: Sequence[str],
        argv: list[str],
        env: Mapping[str, str],
        data_dir: Path,
        endpoints: Endpoints,
    ) -> None:
        self.count = count
        self.roles = list(roles)
        self.argv = argv
        self.env = env
        self.data_dir = data_dir
        self.endpoints = endpoints
        self.metrics_dir = multiprocess_metrics.run_directory(data_dir)
        self.ready: dict[int, _Worker] = {}
        self.urls: tuple[str, str | None] = ("", None)
        self.listening = False
        self.exit_code = 0
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        """Supervise every slot until they have all stopped; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop)
        try:
            await asyncio.gather(*(self._keep(index) for index in range(self.count)))
        finally:
            if self.listening:
                endpoints_file(self.data_dir).unlink(missing_ok=True)
        return self.exit_code

    def _stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: the workers finish in-flight requests, handlers and poll pages")
            self.stopping.set()

    async def _keep(self, index: int) -> None:
        """Run slot `index` until the supervisor stops, restarting its worker whenever it exits."""
        failures = 0
        while not self.stopping.is_set():
            worker = await self._start(index)
            try:
                code = await self._watch(worker)
            finally:
                await self._terminate(worker)
                self._gone(worker)
                multiprocess_metrics.forget_worker(self.metrics_dir, worker.process.pid)
            if code is None:
                return
            if code == EXIT_USAGE or not self.listening:  # a restart would fail the same way
                self.exit_code = code if code > 0 else 1
                log.error(
                    "worker could not start: stopping the others",
                    extra={"worker": index, "pid": worker.process.pid, "exit_code": code},
                )
                self._stop()
                return
            if time.monotonic() - worker.started_at >= STABLE_AFTER_S:
                failures = 0
            delay = restart_delay(failures)
            failures += 1
            log.warning(
                "worker exited: restarting it",
                extra={"worker": index, "pid": worker.process.pid, "exit_code": code, "restart_in_s": delay},
            )
            await wait_set(self.stopping, delay)

    async def _start(self, index: int) -> _Worker:
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                env={**self.env, WORKER_INDEX_ENV: str(index), READY_FD_ENV: str(write_fd)},
                pass_fds=(write_fd,),
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor, which stops the workers
                preexec_fn=die_with_parent(),  # forked from the main thread's event loop
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker holds the only write end: its exit closes the pipe
        log.info("worker started", extra={"worker": index, "pid": process.pid})
        return _Worker(index, process, os.fdopen(read_fd, "rb", buffering=0), time.monotonic())

    async def _watch(self, worker: _Worker) -> int | None:
        """Until the worker exits (its exit code) or the supervisor stops (None); notes when it is ready."""
        stop = asyncio.ensure_future(self.stopping.wait())
        exited = asyncio.ensure_future(worker.process.wait())
        report = asyncio.ensure_future(_read_report(worker.ready_pipe))
        try:
            await asyncio.wait({stop, report}, return_when=asyncio.FIRST_COMPLETED)
            if report.done() and (urls := report.result()) is not None:
                self._ready(worker, urls)
            await asyncio.wait({stop, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stop, exited, report):
                task.cancel()
            await asyncio.wait({stop, exited, report})  # the report's transport lets go of the pipe first
        return None if self.stopping.is_set() else exited.result()

    def _ready(self, worker: _Worker, urls: tuple[str, str | None]) -> None:
        self.ready[worker.index] = worker
        self.urls = urls
        if self.listening:
            log.info("worker ready", extra={"worker": worker.index, "pid": worker.process.pid})
            self._record()
        elif len(self.ready) == self.count:
            self.listening = True
            self._record()
            http_url, admin_url = urls
            log.info(
                "listening", extra={"http": http_url, "admin": admin_url, "roles": self.roles, "workers": self._pids()}
            )

    def _gone(self, worker: _Worker) -> None:
        worker.ready_pipe.close()
        if self.ready.get(worker.index) is worker:
            del self.ready[worker.index]
            if self.listening and not self.stopping.is_set():
                self._record()

    async def _terminate(self, worker: _Worker) -> None:
        """SIGTERM, STOP_GRACE_S for the worker's own shutdown, then SIGKILL; nothing if it has exited."""
        process = worker.process
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("worker did not stop in time: killed", extra={"worker": worker.index, "pid": process.pid})
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def _record(self) -> None:
        http_url, admin_url = self.urls
        record_endpoints(self.data_dir, self.endpoints, http_url, admin_url, self._pids())

    def _pids(self) -> list[int]:
        return [self.ready[index].process.pid for index in sorted(self.ready)]


async def _read_report(pipe: io.FileIO) -> tuple[str, str | None] | None:
    """The URLs a worker reports once it listens, or None if it exited first (its pipe closed)."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        line = await reader.readline()
    finally:
        transport.close()
    if not line:
        return None
    report = orjson.loads(line)
    return str(report["http_url"]), report["admin_url"]
