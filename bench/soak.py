"""Soak benchmark: RSS and open file descriptors of the hub's processes over a steady load.

    .venv/bin/python bench/soak.py [--duration 600] [--rate 400] [--warmup 60] [--sample-every 10]
                                   [--workers 1] [--json PATH] [--keep]

It starts its own nats-server (JetStream on file storage, `sync_interval: always`, as the hub's
embedded default) and valkey-server in a temporary directory, then `connector-hub run` with every
role (ingress, poller, policy, dispatch, admin: the process as deployed) and the GitHub and Standard
Webhooks connectors of `bench/ingest.py`, each with a route sending every event to the core NATS
subject `bench.soak.out`, and a Policy allowing it. So each accepted request is verified, claimed,
stored in HUB_EVENTS, turned into an invocation by the policy consumer and published to the subject
by the dispatch consumer; this process subscribes to the subject and counts the deliveries.

The load is open-loop: request i is due at start + i/rate, alternating GitHub and Standard Webhooks,
unique delivery ids, valid signatures signed in small batches just before they are sent (Standard
Webhooks timestamps expire after 300 s). At most 64 requests are in flight; a request due while 64
are in flight is not sent and counts as `behind`, so the offered load never exceeds --rate.

Every --sample-every seconds, for each hub process (with --workers N > 1: the supervisor and each
worker of `<HUB_DATA_DIR>/endpoints.json`): VmRSS, open fds (split into inbound HTTP connections,
connections to Valkey and the rest, by socket inode in /proc/net/tcp), threads and CPU % since the
previous sample, all from /proc; nats-server's and valkey-server's RSS for context; and the load's
counts so far. The summary compares each hub process with the targets: RSS growth after warm-up
< 10 %, max RSS < 150 MB, fds flat. After the load it waits (bounded) for the gate's backlog, then
checks that HUB_EVENTS holds every accepted event and that each arrived at the subject once.

Loopback only. Every process is stopped by its PID at the end, also on error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import orjson
import yaml
from entry import run_bench, run_loop, start_servers
from ingest import (
    CLK_TCK,
    CONNECTORS_YAML,
    GITHUB_SECRET,
    ID_HEADER,
    STANDARD_SECRET,
    child_env,
    cpu_ticks,
    github_request,
    percentile,
    spawn,
    standard_request,
    stop,
    tail,
    wait_healthy,
)
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from adapters.base import SigningSecret, TestRequest
from adapters.webhooks.github import GitHubAdapter
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from events.streams import AUDIT_STREAM, DLQ_STREAM, EVENTS_STREAM, INVOCATIONS_STREAM
from events.subjects import AUDIT_PREFIX
from hub.app.embedded import RunningServer, free_port
from hub.runtime import natsflush

SOAK_SUBJECT = "bench.soak.out"
POLICY_AUDIT = "policy audit records"
ROUTE_YAML = f"""\
name: soak
match: {{types: ["github.>", "standard-webhooks.>"]}}
target: {{subject: {SOAK_SUBJECT}}}
"""
"""Added to every connector of CONNECTORS_YAML: all its events to the bench's subject."""
POLICY_YAML = """\
apiVersion: hub/v1
kind: Policy
metadata: {{name: soak, tenant: {tenant}}}
spec:
  allowedSubjects: [bench]
  rules:
    - {{name: all, effect: allow}}
"""
"""One per tenant of CONNECTORS_YAML (`{tenant}` filled in)."""

PROVIDER_SECRETS = {"github": GITHUB_SECRET, "standard-webhooks": STANDARD_SECRET}
IN_FLIGHT = 64
SIGN_BATCH = 32
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
DRAIN_IDLE_S = 15.0
DRAIN_MAX_S = 300.0
"""After the load, wait for the gate's backlog until every accepted event arrived, none arrived for
DRAIN_IDLE_S, or DRAIN_MAX_S passed."""
STOP_TIMEOUT_S = 10.0
LAST_SAMPLE_WAIT_S = 10.0
MAX_DURATION_S = 3600.0
HARD_CAP_EXTRA_S = REQUEST_TIMEOUT_S + DRAIN_MAX_S + 60.0
"""The whole measured part stops at --duration plus this, whatever is left."""
RSS_GROWTH_LIMIT_PCT = 10.0
RSS_LIMIT_MB = 150.0
FD_SLACK = 2
"""fds flat: after warm-up, max - min of a process's open fds that are not inbound HTTP connections <= this."""
TCP_LISTEN = "0A"


# --- specs and requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One connector the load posts to."""

    path: str
    provider: str


def soak_specs() -> tuple[str, list[Endpoint], dict[str, str]]:
    """CONNECTORS_YAML with ROUTE_YAML in every connector plus a Policy per tenant; the connectors'
    paths and providers; the environment their secretRefs read."""
    documents: list[dict[str, Any]] = list(yaml.safe_load_all(CONNECTORS_YAML))
    route = yaml.safe_load(ROUTE_YAML)
    endpoints: list[Endpoint] = []
    env: dict[str, str] = {}
    tenants: list[str] = []
    for document in documents:
        if document.get("kind") != "Connector":
            continue
        tenant, name = document["metadata"]["tenant"], document["metadata"]["name"]
        spec = document["spec"]
        provider = spec["provider"]
        if provider not in PROVIDER_SECRETS:
            raise RuntimeError(f"connector {tenant}/{name}: the soak cannot sign for provider {provider}")
        spec["routes"] = [route]
        for entry in spec.get("secrets", []):
            env[entry["secretRef"]["name"]] = PROVIDER_SECRETS[provider]
        endpoints.append(Endpoint(f"/hooks/{tenant}/{name}", provider))
        tenants.append(tenant)
    documents += [yaml.safe_load(POLICY_YAML.format(tenant=tenant)) for tenant in sorted(set(tenants))]
    return yaml.safe_dump_all(documents, sort_keys=False), endpoints, env


class Signer:
    """Signed requests, round robin over the connectors, made in small batches just before use."""

    def __init__(self, endpoints: list[Endpoint]) -> None:
        self._endpoints = endpoints
        self._github = GitHubAdapter.configure()
        self._standard = StandardWebhooksAdapter.configure()
        self._secrets = {p: SigningSecret("bench", s.encode()) for p, s in PROVIDER_SECRETS.items()}
        self._pending: deque[tuple[str, TestRequest]] = deque()
        self._made = 0

    def next(self) -> tuple[str, TestRequest]:
        if not self._pending:
            now = time.time()
            for _ in range(SIGN_BATCH):
                self._pending.append(self._one(now))
        return self._pending.popleft()

    def _one(self, now: float) -> tuple[str, TestRequest]:
        n = self._made
        self._made += 1
        endpoint = self._endpoints[n % len(self._endpoints)]
        secret = self._secrets[endpoint.provider]
        if endpoint.provider == "github":
            request = github_request(self._github, secret, now, n)
        else:
            request = standard_request(self._standard, secret, now, n)
        request.headers[ID_HEADER] = uuid.uuid4().hex
        return endpoint.path, request


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Hub:
    """The `connector-hub run` the bench started and the processes it measures."""

    proc: subprocess.Popen[bytes]
    url: str
    http_port: int
    data_dir: Path
    log: Path
    measured: dict[str, int]
    """label -> PID: `hub`, or `supervisor` and `worker-1`..`worker-N`."""
    workers: list[int] = field(default_factory=list)


def hub_argv(workers: int) -> list[str]:
    argv = [sys.executable, "-m", "hub", "run"]  # every role: no --role
    return [*argv, "--workers", str(workers)] if workers > 1 else argv


def read_endpoints(data_dir: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = orjson.loads((data_dir / "endpoints.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return record


def wait_endpoints(proc: subprocess.Popen[bytes], data_dir: Path, workers: int, log: Path) -> dict[str, Any]:
    """The hub's endpoints record once it is written by this process (and lists the workers when N > 1)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    record: dict[str, Any] | None = None
    while time.monotonic() < deadline and proc.poll() is None:
        record = read_endpoints(data_dir)
        listed = len(record.get("worker_pids") or []) if record is not None else 0
        if record is not None and record.get("pid") == proc.pid and (workers <= 1 or listed >= workers):
            return record
        time.sleep(0.1)
    if proc.poll() is not None:
        raise RuntimeError(f"hub exited ({proc.poll()}) before writing its endpoints record; log:\n{tail(log)}")
    if workers > 1 and record is not None and record.get("pid") == proc.pid:
        raise RuntimeError(
            f"--workers {workers}: the hub's endpoints record has no worker_pids with {workers} PIDs "
            f"(got {record.get('worker_pids')!r}); does `connector-hub run --workers` exist yet?"
        )
    raise RuntimeError(f"hub wrote no endpoints record with its PID in {START_TIMEOUT_S:.0f}s; log:\n{tail(log)}")


def start_time(pid: int) -> int | None:
    """The process's start time (field 22 of /proc/<pid>/stat): with the PID, it names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def stop_strays(workers: list[tuple[int, int | None]]) -> None:
    """After the supervisor stopped: SIGTERM (then SIGKILL) each worker (PID, start time) of this run
    still running; a PID now naming another process (another start time) is left alone."""

    def alive(pid: int, started: int | None) -> bool:
        return started is not None and start_time(pid) == started and not _is_zombie(pid)

    left = [(pid, started) for pid, started in workers if alive(pid, started)]
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [(pid, started) for pid, started in left if alive(pid, started)]
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return _status_fields(pid).get("State", "").startswith("Z")
    except OSError:
        return False


def start_hub(
    cleanup: contextlib.ExitStack,
    workdir: Path,
    nats_server: RunningServer,
    valkey_server: RunningServer,
    workers: int,
) -> Hub:
    """Spawn `connector-hub run`, register its stop first (an interrupt still stops it), wait until it serves."""
    specs, _, secret_env = soak_specs()
    specs_path = workdir / "specs.yaml"
    specs_path.write_text(specs)
    port = free_port()
    data_dir = workdir / "hub"
    env = child_env(
        {
            "HUB_NATS_URL": nats_server.url,
            "HUB_REDIS_URL": valkey_server.url,
            "HUB_DATA_DIR": str(data_dir),
            "HUB_CONNECTORS": str(specs_path),
            "HUB_HTTP_HOST": "127.0.0.1",
            "HUB_HTTP_PORT": str(port),
            "HUB_ADMIN_HOST": "127.0.0.1",
            "HUB_ADMIN_PORT": "0",
            "HUB_LOG_FORMAT": "json",
            "HUB_LOG_LEVEL": "WARNING",
        }
        | secret_env
    )
    log = workdir / "hub.log"
    workers_started: list[tuple[int, int | None]] = []
    cleanup.callback(stop_strays, workers_started)  # runs after the hub's own stop below
    proc = spawn(hub_argv(workers), env, log)
    cleanup.callback(stop, proc)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy("hub", f"{url}/healthz", proc, log)
    except RuntimeError:
        if workers > 1 and "unrecognized arguments: --workers" in tail(log):
            raise RuntimeError(f"--workers {workers}: this `connector-hub run` has no --workers flag yet") from None
        raise
    record = wait_endpoints(proc, data_dir, workers, log)
    worker_pids = [int(pid) for pid in record.get("worker_pids") or []]
    workers_started.extend((pid, start_time(pid)) for pid in worker_pids)
    if worker_pids:
        measured = {"supervisor": proc.pid} | {f"worker-{i}": pid for i, pid in enumerate(worker_pids, 1)}
    else:
        measured = {"hub": proc.pid}
    return Hub(proc, url, port, data_dir, log, measured, worker_pids)


# --- measuring -----------------------------------------------------------------------------------


def _status_fields(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def rss_mb(pid: int) -> float:
    """VmRSS in MB (MiB), NaN if the process is gone."""
    try:
        return int(_status_fields(pid)["VmRSS"].split()[0]) / 1024
    except (OSError, KeyError, ValueError, IndexError):
        return math.nan


@dataclass(frozen=True)
class Ports:
    """What a hub process's TCP sockets are, by port: inbound HTTP, or a client of Valkey or NATS."""

    http: int
    valkey: int
    nats: int

    def socket_kinds(self) -> dict[str, str]:
        """Socket inode -> `http`, `valkey` or `nats`, for the TCP connections (not listeners) of
        /proc/net/tcp{,6} that are one of those (other sockets are not listed)."""
        kinds = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as lines:
                next(lines, None)
                for line in lines:
                    cols = line.split()
                    if len(cols) < 10 or cols[3] == TCP_LISTEN:
                        continue
                    local, remote = int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16)
                    if local == self.http:
                        kinds[cols[9]] = "http"
                    elif remote == self.valkey:
                        kinds[cols[9]] = "valkey"
                    elif remote == self.nats:
                        kinds[cols[9]] = "nats"
        return kinds


@dataclass(frozen=True)
class ProcSample:
    """One process at one sample."""

    rss_mb: float
    fds: int
    http_fds: int
    """Of `fds`, inbound HTTP connections (they follow the load generator's keep-alive pool)."""
    valkey_fds: int
    """Of `fds`, connections to valkey-server (redis-py's pool grows to the peak of concurrent calls)."""
    nats_fds: int
    threads: int
    cpu_pct: float
    """Since the previous sample (NaN at the first)."""

    @property
    def other_fds(self) -> int:
        """Every open fd but the inbound HTTP connections."""
        return self.fds - self.http_fds


def read_process(pid: int, kinds: dict[str, str], last_ticks: dict[int, tuple[float, int]]) -> ProcSample | None:
    """RSS, fds (by kind), threads, CPU % of a process; None if it is gone."""
    counts: Counter[str] = Counter()
    try:
        now = time.monotonic()
        ticks = cpu_ticks(pid)
        status = _status_fields(pid)
        fd_dir = f"/proc/{pid}/fd"
        names = os.listdir(fd_dir)
        for name in names:
            with contextlib.suppress(OSError):  # closed meanwhile
                target = os.readlink(f"{fd_dir}/{name}")
                if target.startswith("socket:["):
                    counts[kinds.get(target[8:-1], "")] += 1
    except (OSError, ValueError):
        return None
    previous = last_ticks.get(pid)
    last_ticks[pid] = (now, ticks)
    cpu = math.nan
    if previous is not None and now > previous[0]:
        cpu = (ticks - previous[1]) / CLK_TCK / (now - previous[0]) * 100
    return ProcSample(
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        fds=len(names),
        http_fds=counts["http"],
        valkey_fds=counts["valkey"],
        nats_fds=counts["nats"],
        threads=int(status["Threads"]),
        cpu_pct=cpu,
    )


@dataclass
class LoadStats:
    """The load so far."""

    scheduled: int = 0
    sent: int = 0
    accepted: int = 0
    behind: int = 0
    in_flight: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    interval_ms: list[float] = field(default_factory=list)
    """Latencies since the last sample (the sampler takes and clears it)."""

    @property
    def errors(self) -> int:
        return sum(self.failures.values())


class Deliveries:
    """The core subscriber on the route's subject: deliveries, by envelope id."""

    def __init__(self) -> None:
        self.count = 0
        self.ids: set[str] = set()
        self._arrived = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        self.count += 1
        self.ids.add((msg.headers or {}).get("ce-id") or str(orjson.loads(msg.data).get("id")))
        self._arrived.set()

    async def drain(self, wanted: int, idle_s: float, max_s: float) -> float:
        """Until `wanted` distinct events have arrived, none arrived for `idle_s`, or `max_s` passed; seconds waited."""
        started = time.monotonic()
        deadline = started + max_s
        while len(self.ids) < wanted and (left := deadline - time.monotonic()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), min(idle_s, left))
            except TimeoutError:
                break
        return time.monotonic() - started

    @property
    def duplicates(self) -> int:
        return self.count - len(self.ids)


@dataclass
class Sample:
    """Everything at one sample time."""

    t_s: float
    scheduled: int
    sent: int
    accepted: int
    errors: int
    behind: int
    delivered: int
    p99_ms: float
    """Of the requests accepted since the previous sample."""
    hub: dict[str, ProcSample | None]
    servers_rss_mb: dict[str, float]


async def post(session: aiohttp.ClientSession, url: str, request: TestRequest, stats: LoadStats) -> None:
    stats.sent += 1
    stats.in_flight += 1
    started = time.perf_counter()
    try:
        async with session.post(url, data=request.body, headers=request.headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        stats.failures[type(exc).__name__] += 1
        return
    finally:
        stats.in_flight -= 1
    if 200 <= status < 300:
        stats.accepted += 1
        latency = (time.perf_counter() - started) * 1000
        stats.latencies_ms.append(latency)
        stats.interval_ms.append(latency)
    else:
        stats.failures[str(status)] += 1


async def drive(
    base_url: str, signer: Signer, stats: LoadStats, rate: float, start: float, duration: float, sampled: asyncio.Event
) -> None:
    """Request i at start + i/rate (monotonic) until `duration`; skip (and count as behind) when IN_FLIGHT are out.
    The connections stay open until `sampled` is set (bounded), so the last sample sees them as the others did."""
    total = math.ceil(duration * rate)
    deadline = start + duration
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() >= deadline:
                break
            stats.scheduled += 1
            if stats.in_flight >= IN_FLIGHT:
                stats.behind += 1
                continue
            path, request = signer.next()
            task = asyncio.create_task(post(session, base_url + path, request, stats))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:  # each is bounded by REQUEST_TIMEOUT_S; this is a backstop
            await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT_S + 5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sampled.wait(), LAST_SAMPLE_WAIT_S)


def sample_times(duration: float, every: float) -> list[float]:
    times = [k * every for k in range(int(duration / every + 1e-9) + 1)]
    return times if duration - times[-1] < 1e-9 else [*times, duration]


async def sampler(
    hub: Hub,
    servers: dict[str, RunningServer],
    stats: LoadStats,
    deliveries: Deliveries,
    start: float,
    args: argparse.Namespace,
    samples: list[Sample],
    sampled: asyncio.Event,
) -> None:
    """One sample at each of sample_times (monotonic, from `start`), printed as it is taken; then set `sampled`."""
    last_ticks: dict[int, tuple[float, int]] = {}
    ports = Ports(hub.http_port, servers["valkey-server"].port, servers["nats-server"].port)
    print(header(hub), flush=True)
    for t in sample_times(args.duration, args.sample_every):
        delay = start + t - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        kinds = ports.socket_kinds()
        interval = sorted(stats.interval_ms)
        stats.interval_ms.clear()
        sample = Sample(
            t_s=round(time.monotonic() - start, 3),
            scheduled=stats.scheduled,
            sent=stats.sent,
            accepted=stats.accepted,
            errors=stats.errors,
            behind=stats.behind,
            delivered=deliveries.count,
            p99_ms=percentile(interval, 0.99),
            hub={label: read_process(pid, kinds, last_ticks) for label, pid in hub.measured.items()},
            servers_rss_mb={name: rss_mb(server.pid) for name, server in servers.items()},
        )
        samples.append(sample)
        print(sample_line(sample), flush=True)
    sampled.set()


def header(hub: Hub) -> str:
    head = f"{'t s':>6} {'sent':>7} {'accepted':>8} {'errors':>6} {'behind':>6} {'delivered':>9} {'p99 ms':>7}"
    for label in hub.measured:
        head += f" | {label + ' MB':>11} {'fds(http/vk)':>13} {'thr':>3} {'cpu%':>4}"
    return head + f" | {'nats MB':>7} {'valkey MB':>9}"


def sample_line(s: Sample) -> str:
    line = f"{s.t_s:>6.0f} {s.sent:>7} {s.accepted:>8} {s.errors:>6} {s.behind:>6} {s.delivered:>9} {s.p99_ms:>7.1f}"
    for p in s.hub.values():
        if p is None:
            line += f" | {'gone':>11} {'':>13} {'':>3} {'':>4}"
            continue
        cpu = "-" if math.isnan(p.cpu_pct) else f"{p.cpu_pct:.0f}"
        fds = f"{p.fds}({p.http_fds}/{p.valkey_fds})"
        line += f" | {p.rss_mb:>11.1f} {fds:>13} {p.threads:>3} {cpu:>4}"
    return line + f" | {s.servers_rss_mb['nats-server']:>7.1f} {s.servers_rss_mb['valkey-server']:>9.1f}"


async def stream_count(js: JetStreamContext, stream: str, subjects: str | None = None) -> int:
    """Messages in the stream, or only those on `subjects` (a filter)."""
    try:
        info = await js.stream_info(stream, subjects_filter=subjects)
    except NotFoundError:
        return 0
    return sum((info.state.subjects or {}).values()) if subjects else int(info.state.messages)


@dataclass
class EndState:
    """Counts after the load drained."""

    elapsed_s: float
    backlog: int
    """Accepted events not yet delivered when the load stopped (the gate's backlog)."""
    drain_s: float
    stored: dict[str, int]
    delivered: int
    unique_delivered: int
    duplicates: int
    worker_pids_at_end: list[int] | None
    log_lines: list[str]


async def soak(
    hub: Hub, nats_server: RunningServer, valkey_server: RunningServer, args: argparse.Namespace, samples: list[Sample]
) -> tuple[LoadStats, EndState]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # like Ctrl-C
    nc = await nats.connect(nats_server.url, name="bench-soak", connect_timeout=2)
    try:
        deliveries = Deliveries()
        await nc.subscribe(SOAK_SUBJECT, cb=deliveries.on_message)
        await natsflush.flush(nc, 5.0)
        _, endpoints, _ = soak_specs()
        stats = LoadStats()
        servers = {"nats-server": nats_server, "valkey-server": valkey_server}
        async with asyncio.timeout(args.duration + HARD_CAP_EXTRA_S):
            start = time.monotonic()
            sampled = asyncio.Event()
            await asyncio.gather(
                drive(hub.url, Signer(endpoints), stats, args.rate, start, args.duration, sampled),
                sampler(hub, servers, stats, deliveries, start, args, samples, sampled),
            )
            elapsed = time.monotonic() - start
            backlog = stats.accepted - len(deliveries.ids)
            drain_s = await deliveries.drain(stats.accepted, DRAIN_IDLE_S, DRAIN_MAX_S)
            js = nc.jetstream()
            streams = (EVENTS_STREAM, INVOCATIONS_STREAM, DLQ_STREAM, AUDIT_STREAM)
            stored = {s: await stream_count(js, s) for s in streams}
            stored[POLICY_AUDIT] = await stream_count(js, AUDIT_STREAM, f"{AUDIT_PREFIX}.*.policy")
        stats.latencies_ms.sort()
        record = read_endpoints(hub.data_dir)
        workers_now = [int(p) for p in record.get("worker_pids") or []] if record else None
        log_lines = [line for line in tail(hub.log, 1000).splitlines() if line.strip()]
        if log_lines == ["(no log)"]:
            log_lines = []
        end = EndState(
            elapsed_s=elapsed,
            backlog=backlog,
            drain_s=drain_s,
            stored=stored,
            delivered=deliveries.count,
            unique_delivered=len(deliveries.ids),
            duplicates=deliveries.duplicates,
            worker_pids_at_end=workers_now,
            log_lines=log_lines,
        )
        return stats, end
    finally:
        await nc.close()


# --- summary -------------------------------------------------------------------------------------


def least_squares_slope(points: list[tuple[float, float]]) -> float:
    """Slope of y over x by ordinary least squares (NaN with fewer than two distinct x)."""
    if len(points) < 2:
        return math.nan
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        return math.nan
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def process_summary(label: str, pid: int, samples: list[Sample], warmup: float) -> dict[str, Any]:
    """A hub process's RSS and fds over the run, and its verdicts."""
    seen = [(s.t_s, p) for s in samples if (p := s.hub.get(label)) is not None]
    after = [(t, p) for t, p in seen if t >= warmup - 1e-6]
    if not after:
        return {"label": label, "pid": pid, "missing": True}
    baseline, end = after[0][1].rss_mb, after[-1][1].rss_mb
    growth = (end - baseline) / baseline * 100
    slope = least_squares_slope([(t / 60, p.rss_mb) for t, p in after])
    max_rss = max(p.rss_mb for _, p in seen)
    fds = [p.fds for _, p in after]
    other = [p.other_fds for _, p in after]
    valkey = [p.valkey_fds for _, p in after]
    rest = [p.other_fds - p.valkey_fds for _, p in after]
    http = [p.http_fds for _, p in after]
    cpu = [p.cpu_pct for _, p in after if not math.isnan(p.cpu_pct)]
    return {
        "label": label,
        "pid": pid,
        "missing": False,
        "samples": len(seen),
        "gone_at_some_sample": len(seen) < len(samples),
        "rss_start_mb": round(seen[0][1].rss_mb, 2),
        "rss_warmup_mb": round(baseline, 2),
        "warmup_sample_t_s": after[0][0],
        "rss_end_mb": round(end, 2),
        "rss_max_mb": round(max_rss, 2),
        "rss_growth_pct": round(growth, 2),
        "rss_slope_mb_per_min": _finite(slope),
        "fds_min": min(fds),
        "fds_max": max(fds),
        "other_fds_min": min(other),
        "other_fds_max": max(other),
        "valkey_fds_min": min(valkey),
        "valkey_fds_max": max(valkey),
        "http_fds_min": min(http),
        "http_fds_max": max(http),
        "rest_fds_min": min(rest),
        "rest_fds_max": max(rest),
        "threads_max": max(p.threads for _, p in after),
        "cpu_pct_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
        "rss_growth_ok": growth < RSS_GROWTH_LIMIT_PCT,
        "max_rss_ok": max_rss < RSS_LIMIT_MB,
        "fds_flat": max(other) - min(other) <= FD_SLACK,
    }


def server_summary(name: str, samples: list[Sample], warmup: float) -> dict[str, Any]:
    values = [(s.t_s, s.servers_rss_mb[name]) for s in samples if not math.isnan(s.servers_rss_mb[name])]
    after = [(t, v) for t, v in values if t >= warmup - 1e-6]
    if not after:
        return {"name": name, "missing": True}
    return {
        "name": name,
        "missing": False,
        "rss_start_mb": round(values[0][1], 2),
        "rss_warmup_mb": round(after[0][1], 2),
        "rss_end_mb": round(after[-1][1], 2),
        "rss_max_mb": round(max(v for _, v in values), 2),
        "rss_slope_mb_per_min": _finite(least_squares_slope([(t / 60, v) for t, v in after])),
    }


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def report(
    hub: Hub, samples: list[Sample], stats: LoadStats, end: EndState, args: argparse.Namespace
) -> dict[str, Any]:
    """Print the summary; return everything for --json."""
    processes = [process_summary(label, pid, samples, args.warmup) for label, pid in hub.measured.items()]
    servers = [server_summary(name, samples, args.warmup) for name in ("nats-server", "valkey-server")]
    print()
    print(
        f"summary: {args.duration:g} s at {args.rate:g} requests/s, warm-up {args.warmup:g} s, "
        f"a sample every {args.sample_every:g} s, {len(samples)} samples, workers {args.workers}"
    )
    print()
    print(f"{'':<18} {'RSS MB':-^38} {'RSS growth':^16} {'fds after warm-up, min-max':-^36}")
    head = f"{'process':<10} {'pid':>7} {'start':>8} {'warm-up':>8} {'end':>8} {'max':>8} {'%':>7} {'MB/min':>8}"
    print(head + f"  {'all':>8} {'HTTP':>8} {'Valkey':>8} {'rest':>8} {'thr':>4} {'cpu%':>5}")
    for p in processes:
        if p["missing"]:
            print(f"{p['label']:<10} {p['pid']:>7}  no sample after warm-up (process gone?)")
            continue
        slope = "nan" if p["rss_slope_mb_per_min"] is None else f"{p['rss_slope_mb_per_min']:+.3f}"
        cpu = "-" if p["cpu_pct_mean"] is None else f"{p['cpu_pct_mean']:.0f}"
        fds = [f"{p[f'{kind}_min']}-{p[f'{kind}_max']}" for kind in ("fds", "http_fds", "valkey_fds", "rest_fds")]
        print(
            f"{p['label']:<10} {p['pid']:>7} {p['rss_start_mb']:>8.1f} {p['rss_warmup_mb']:>8.1f}"
            f" {p['rss_end_mb']:>8.1f} {p['rss_max_mb']:>8.1f} {p['rss_growth_pct']:>+6.1f}% {slope:>8}"
            f"  {fds[0]:>8} {fds[1]:>8} {fds[2]:>8} {fds[3]:>8} {p['threads_max']:>4} {cpu:>5}"
        )
    for s in servers:
        if s["missing"]:
            continue
        slope = "nan" if s["rss_slope_mb_per_min"] is None else f"{s['rss_slope_mb_per_min']:+.3f}"
        growth = (s["rss_end_mb"] - s["rss_warmup_mb"]) / s["rss_warmup_mb"] * 100 if s["rss_warmup_mb"] else math.nan
        print(
            f"{s['name']:<18} {s['rss_start_mb']:>8.1f} {s['rss_warmup_mb']:>8.1f}"
            f" {s['rss_end_mb']:>8.1f} {s['rss_max_mb']:>8.1f} {growth:>+6.1f}% {slope:>8}  (context, no target)"
        )
    print()
    for p in processes:
        if p["missing"]:
            print(f"{p['label']}: not measured after warm-up")
            continue
        print(
            f"{p['label']}: RSS growth < {RSS_GROWTH_LIMIT_PCT:g} %: {_yes(p['rss_growth_ok'])}"
            f"   max RSS < {RSS_LIMIT_MB:g} MB: {_yes(p['max_rss_ok'])}   fds flat: {_yes(p['fds_flat'])}"
        )
    print(
        f"RSS growth: end vs warm-up (the first sample at or after {args.warmup:g} s); MB/min: least squares over "
        "the samples from warm-up on.\n"
        f"fds flat: max - min of the open fds other than inbound HTTP connections (Valkey + rest) <= {FD_SLACK} "
        "from warm-up on. HTTP: inbound\nconnections (they follow the load generator's keep-alive pool); Valkey: "
        "connections to valkey-server; rest: everything else (NATS, listeners, files, pipes)."
    )
    print()
    rate = stats.accepted / end.elapsed_s if end.elapsed_s else math.nan
    errors = ", ".join(f"{k}:{v}" for k, v in sorted(stats.failures.items())) or "0"
    print(
        f"load: scheduled {stats.scheduled}, sent {stats.sent}, accepted {stats.accepted} ({rate:.1f}/s), "
        f"behind {stats.behind}, errors {errors}"
    )
    lat = stats.latencies_ms
    print(
        f"latency of accepted requests, ms: p50 {percentile(lat, 0.5):.2f}, p99 {percentile(lat, 0.99):.2f}, "
        f"p999 {percentile(lat, 0.999):.2f}, max {percentile(lat, 1.0):.2f}"
    )
    stored = end.stored[EVENTS_STREAM]
    versus = "= accepted" if stored == stats.accepted else f"accepted is {stats.accepted}: MISMATCH"
    print(
        f"stored in {EVENTS_STREAM}: {stored} ({versus}); {INVOCATIONS_STREAM}: {end.stored[INVOCATIONS_STREAM]}; "
        f"{DLQ_STREAM}: {end.stored[DLQ_STREAM]}; {AUDIT_STREAM}: {end.stored[AUDIT_STREAM]} "
        f"({end.stored[POLICY_AUDIT]} policy denials; the others are control-plane records of the start)"
    )
    missing = stats.accepted - end.unique_delivered
    print(
        f"deliveries at {SOAK_SUBJECT}: {end.delivered} ({end.unique_delivered} distinct events, "
        f"{end.duplicates} duplicates); the gate's backlog when the load stopped: {end.backlog} events, "
        f"waited {end.drain_s:.0f} s;\naccepted events never delivered: {max(0, missing)} (the wait ends when all "
        f"arrived, none arrived for {DRAIN_IDLE_S:g} s, or after {DRAIN_MAX_S:g} s)"
    )
    notes = []
    if hub.workers and end.worker_pids_at_end is not None and end.worker_pids_at_end != hub.workers:
        notes.append(f"worker PIDs changed during the run: {hub.workers} -> {end.worker_pids_at_end}")
    for p in processes:
        if not p["missing"] and p["gone_at_some_sample"]:
            notes.append(f"{p['label']} (pid {p['pid']}) could not be read at some samples (exited?)")
    if end.log_lines:
        notes.append(f"hub log (level WARNING): {len(end.log_lines)} lines, first: {end.log_lines[0][:300]}")
    print("\n".join(notes) if notes else "hub log (level WARNING): empty")
    return {
        "setup": {
            "duration_s": args.duration,
            "rate_per_s": args.rate,
            "warmup_s": args.warmup,
            "sample_every_s": args.sample_every,
            "workers": args.workers,
            "in_flight": IN_FLIGHT,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "nats_sync_interval": "always",
            "hub_argv": hub_argv(args.workers)[1:],
            "measured": hub.measured,
            "fd_slack": FD_SLACK,
        },
        "samples": [
            asdict(s) | {"hub": {k: (asdict(p) | {"other_fds": p.other_fds}) if p else None for k, p in s.hub.items()}}
            for s in samples
        ],
        "summary": {
            "processes": processes,
            "servers": servers,
            "load": {
                "scheduled": stats.scheduled,
                "sent": stats.sent,
                "accepted": stats.accepted,
                "accepted_per_s": _finite(rate),
                "behind": stats.behind,
                "failures": dict(stats.failures),
                "p50_ms": _finite(percentile(lat, 0.5)),
                "p99_ms": _finite(percentile(lat, 0.99)),
                "max_ms": _finite(percentile(lat, 1.0)),
            },
            "stored": end.stored,
            "delivered": end.delivered,
            "gate_backlog_at_load_end": end.backlog,
            "drain_s": round(end.drain_s, 1),
            "delivered_distinct": end.unique_delivered,
            "duplicates": end.duplicates,
            "hub_log_lines": len(end.log_lines),
            "notes": notes,
        },
    }


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests/s, paced (default 400)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline (default 60)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--workers", type=int, default=1, help="passed to `connector-hub run` when > 1 (default 1)")
    parser.add_argument("--json", type=Path, help="also write the samples and the summary to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server data, specs, hub log)")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S:.0f}] s")
    if not 0 < args.rate <= 10_000:
        parser.error("--rate must be in (0, 10000]")
    if not 0 <= args.warmup < args.duration:
        parser.error("--warmup must be in [0, --duration)")
    if not 0.5 <= args.sample_every <= args.duration:
        parser.error("--sample-every must be in [0.5, --duration] s")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be in [1, 64]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    samples: list[Sample] = []

    def measure() -> tuple[Hub, LoadStats, EndState]:
        with contextlib.ExitStack() as cleanup:
            servers = start_servers(cleanup, "hub-bench-soak-", args.keep)
            nats_server, valkey_server = servers.nats, servers.valkey
            hub = start_hub(cleanup, servers.workdir, nats_server, valkey_server, args.workers)
            pids = ", ".join(f"{label} {pid}" for label, pid in hub.measured.items())
            print(
                f"# hub ({pids}), nats-server {nats_server.pid}, valkey-server {valkey_server.pid}; "
                f"{args.duration:g} s at {args.rate:g}/s",
                flush=True,
            )
            stats, end = run_loop(asyncio.run, soak(hub, nats_server, valkey_server, args, samples))
            return hub, stats, end

    def figures(results: tuple[Hub, LoadStats, EndState]) -> dict[str, Any]:
        hub, stats, end = results
        return report(hub, samples, stats, end, args)

    return run_bench(
        measure,
        figures,
        args.json,
        errors=(RuntimeError, TimeoutError),
        to_json=lambda figures: json.dumps(_json_safe(figures), indent=2, allow_nan=False),
    )


def _json_safe(value: Any) -> Any:
    """NaN (a process gone, no latency yet) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
