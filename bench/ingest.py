"""Ingest benchmark: `connector-hub run` against a minimal JetStream-publishing handler, same machine, same run.

    .venv/bin/python bench/ingest.py [--requests N] [--concurrency C] [--duration-cap S] [--json PATH]

It starts its own nats-server (JetStream on file storage, `sync_interval: always`, as the hub's
embedded default) and valkey-server in a temporary directory, then two HTTP servers, each in its
own process, both publishing to that NATS:

- hub: the real `connector-hub run` (HUB_NATS_URL/HUB_REDIS_URL set), with a GitHub and a Standard
  Webhooks connector; half the requests go to each. Full path: verify, dedupe claim in Valkey,
  envelope, publish with PubAck, done mark.
- minimal: `bench/minimal_server.py`, which only reads the body, publishes it to the BENCH_MINIMAL
  stream with a `Nats-Msg-Id` and awaits the PubAck.

The load generator is an aiohttp client in this process: C workers share one counter over N
pre-signed requests (4 KB JSON bodies, unique delivery ids, valid signatures), after a warm-up that
is not counted. Every phase is bounded by --duration-cap. Only 2xx answers count as accepted.

Output: per phase requests, accepted/s, p50/p99/p999 latency of accepted requests, errors, and
how many events the stream gained (must equal accepted); then `ratio hub/minimal` and CPU ms
per request of every process (from /proc/<pid>/stat utime+stime, over the timed part only).
Everything listens on loopback and is stopped by PID at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import json
import math
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import nats
import orjson
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from adapters.base import SigningSecret, TestRequest
from adapters.webhooks.github import GitHubAdapter
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from hub.embedded import RunningServer, free_port, start_nats, start_valkey

BENCH_DIR = Path(__file__).resolve().parent
BODY_BYTES = 4096
TENANT = "bench"
GITHUB_PATH = f"/hooks/{TENANT}/gh"
STANDARD_PATH = f"/hooks/{TENANT}/sw"
HUB_STREAM = "HUB_EVENTS"
MINIMAL_STREAM = "BENCH_MINIMAL"
MINIMAL_SUBJECTS = "bench.minimal.>"
DUPLICATE_WINDOW_S = 900.0  # the hub's default for HUB_EVENTS, so both streams track the same ids
ID_HEADER = "X-Bench-Id"
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
MAX_CAP_S = 120.0  # Standard Webhooks signatures are signed before the phase and expire after 300 s
CLK_TCK = os.sysconf("SC_CLK_TCK")

GITHUB_SECRET = secrets.token_hex(20)
STANDARD_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
CONNECTORS_YAML = f"""\
apiVersion: hub/v1
kind: Connector
metadata: {{name: gh, tenant: {TENANT}}}
spec:
  type: webhook
  provider: github
  secrets: [{{secretRef: {{source: env, name: BENCH_GITHUB_SECRET}}}}]
---
apiVersion: hub/v1
kind: Connector
metadata: {{name: sw, tenant: {TENANT}}}
spec:
  type: webhook
  provider: standard-webhooks
  secrets: [{{secretRef: {{source: env, name: BENCH_STANDARD_SECRET}}}}]
"""


# --- requests ------------------------------------------------------------------------------------

Prepared = tuple[str, TestRequest]
"""(path, signed request)."""


def padded_json(payload: dict[str, Any], size: int = BODY_BYTES) -> bytes:
    """`payload` as JSON, padded with a `padding` string to exactly `size` bytes (when it fits)."""
    base = orjson.dumps({**payload, "padding": ""})
    return orjson.dumps({**payload, "padding": "x" * max(0, size - len(base))})


def github_request(adapter: GitHubAdapter, secret: SigningSecret, now: float, n: int) -> TestRequest:
    sample = adapter.sample(now)
    payload = orjson.loads(sample.body) | {"bench_seq": n}
    return adapter.sign(TestRequest(headers=sample.headers, body=padded_json(payload)), secret, now)


def standard_request(adapter: StandardWebhooksAdapter, secret: SigningSecret, now: float, n: int) -> TestRequest:
    sample = adapter.sample(now)
    payload = orjson.loads(sample.body) | {"bench_seq": n}
    return adapter.sign(TestRequest(headers=sample.headers, body=padded_json(payload)), secret, now)


def prepare(count: int) -> list[Prepared]:
    """`count` signed requests, alternating GitHub and Standard Webhooks, each with a unique id."""
    github, standard = GitHubAdapter.configure(), StandardWebhooksAdapter.configure()
    gh_secret = SigningSecret("bench", GITHUB_SECRET.encode())
    sw_secret = SigningSecret("bench", STANDARD_SECRET.encode())
    now = time.time()
    prepared: list[Prepared] = []
    for n in range(count):
        if n % 2 == 0:
            path, request = GITHUB_PATH, github_request(github, gh_secret, now, n)
        else:
            path, request = STANDARD_PATH, standard_request(standard, sw_secret, now, n)
        request.headers[ID_HEADER] = uuid.uuid4().hex
        prepared.append((path, request))
    return prepared


# --- processes -----------------------------------------------------------------------------------


def _die_with_parent() -> Callable[[], None] | None:
    """A child-side hook: Linux sends the child SIGTERM when the bench dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    return lambda: prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches the bench, which stops children in order)."""
    with log.open("wb") as log_file:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=BENCH_DIR.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM this PID, wait, SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def wait_healthy(name: str, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` until it answers 200, failing early if the process exits or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not become healthy (exit {proc.poll()}); log:\n{tail(log)}")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "BENCH_"))}
    return env | extra


@dataclass
class Stack:
    """Everything the bench started, by PID."""

    workdir: Path
    nats: RunningServer
    valkey: RunningServer
    hub: subprocess.Popen[bytes]
    hub_url: str
    minimal: subprocess.Popen[bytes]
    minimal_url: str

    def pids(self) -> dict[str, int]:
        return {
            "hub": self.hub.pid,
            "minimal": self.minimal.pid,
            "nats-server": self.nats.pid,
            "valkey-server": self.valkey.pid,
            "loadgen": os.getpid(),
        }


def hub_process(workdir: Path, nats_url: str, redis_url: str) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and base URL of `connector-hub run` on the bench's servers."""
    connectors = workdir / "connectors.yaml"
    connectors.write_text(CONNECTORS_YAML)
    port = free_port()
    env = child_env(
        {
            "HUB_NATS_URL": nats_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_DATA_DIR": str(workdir / "hub"),
            "HUB_CONNECTORS": str(connectors),
            "HUB_HTTP_PORT": str(port),
            "HUB_ADMIN_PORT": "0",
            "HUB_LOG_FORMAT": "json",
            "BENCH_GITHUB_SECRET": GITHUB_SECRET,
            "BENCH_STANDARD_SECRET": STANDARD_SECRET,
        }
    )
    return [sys.executable, "-m", "hub", "run"], env, f"http://127.0.0.1:{port}"


def minimal_process(nats_url: str) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and base URL of bench/minimal_server.py."""
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "minimal_server.py"), "--nats-url", nats_url, "--port", str(port)]
    return argv, child_env({}), f"http://127.0.0.1:{port}"


def start_http_server(
    cleanup: contextlib.ExitStack, name: str, spec: tuple[list[str], dict[str, str], str], workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """Spawn, register its stop (before waiting, so an interrupt still stops it), wait for /healthz."""
    argv, env, url = spec
    log = workdir / f"{name}.log"
    proc = spawn(argv, env, log)
    cleanup.callback(stop, proc)
    wait_healthy(name, f"{url}/healthz", proc, log)
    return proc, url


@contextlib.contextmanager
def running_stack(keep: bool) -> Iterator[Stack]:
    """Start NATS, Valkey, the hub and the minimal server; stop each by PID on the way out."""
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        if not keep:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        nats_server = start_nats(workdir / "servers", sync_interval="always")
        cleanup.callback(nats_server.stop)
        valkey_server = start_valkey(workdir / "servers")
        cleanup.callback(valkey_server.stop)
        hub_spec = hub_process(workdir, nats_server.url, valkey_server.url)
        hub, hub_url = start_http_server(cleanup, "hub", hub_spec, workdir)
        minimal, minimal_url = start_http_server(cleanup, "minimal", minimal_process(nats_server.url), workdir)
        yield Stack(workdir, nats_server, valkey_server, hub, hub_url, minimal, minimal_url)


# --- measuring -----------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5), counted after `pid (comm)`


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


@dataclass
class LoadResult:
    """What one load run saw."""

    sent: int = 0
    accepted: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class PhaseResult:
    """One phase's figures."""

    name: str
    load: LoadResult
    stored: int
    cpu_ms_per_request: dict[str, float]

    @property
    def accepted_per_s(self) -> float:
        return self.load.accepted / self.load.elapsed_s if self.load.elapsed_s else 0.0

    def latency(self, q: float) -> float:
        return percentile(self.load.latencies_ms, q)

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "requests": self.load.sent,
            "accepted": self.load.accepted,
            "stored": self.stored,
            "elapsed_s": round(self.load.elapsed_s, 3),
            "accepted_per_s": round(self.accepted_per_s, 1),
            "p50_ms": round(self.latency(0.50), 3),
            "p99_ms": round(self.latency(0.99), 3),
            "p999_ms": round(self.latency(0.999), 3),
            "failures": dict(self.load.failures),
            "cpu_ms_per_request": {k: round(v, 3) for k, v in self.cpu_ms_per_request.items()},
        }


async def load(base_url: str, requests: list[Prepared], concurrency: int, cap_s: float) -> LoadResult:
    """POST every request with `concurrency` workers on a shared counter, until done or `cap_s` passed."""
    result = LoadResult()
    next_index = 0
    deadline = time.perf_counter() + cap_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(requests) and time.perf_counter() < deadline:
            path, request = requests[next_index]
            next_index += 1
            result.sent += 1
            started = time.perf_counter()
            try:
                async with session.post(base_url + path, data=request.body, headers=request.headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failures[type(exc).__name__] += 1
                continue
            if 200 <= status < 300:
                result.accepted += 1
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                result.failures[str(status)] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        async with asyncio.timeout(cap_s + REQUEST_TIMEOUT_S + 5):  # workers stop at the cap; this is a backstop
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        result.elapsed_s = time.perf_counter() - started
    result.latencies_ms.sort()
    return result


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


async def run_phase(
    name: str, url: str, stream: str, stack: Stack, args: argparse.Namespace, js: JetStreamContext
) -> PhaseResult:
    """Warm up (not counted), then the timed load with CPU and stream counts around it."""
    requests = prepare(args.warmup + args.requests)
    warm = await load(url, requests[: args.warmup], args.concurrency, args.duration_cap)
    if args.warmup and not warm.accepted:
        raise RuntimeError(f"{name}: no request accepted in the warm-up: {dict(warm.failures)}")
    pids = stack.pids()
    before_msgs = await stream_messages(js, stream)
    before_cpu = {proc: cpu_ticks(pid) for proc, pid in pids.items()}
    timed = await load(url, requests[args.warmup :], args.concurrency, args.duration_cap)
    after_cpu = {proc: cpu_ticks(pid) for proc, pid in pids.items()}
    stored = await stream_messages(js, stream) - before_msgs
    per_request = {proc: (after_cpu[proc] - before_cpu[proc]) * 1000 / CLK_TCK / max(1, timed.sent) for proc in pids}
    return PhaseResult(name, timed, stored, per_request)


async def bench(stack: Stack, args: argparse.Namespace) -> list[PhaseResult]:
    """Create the minimal stream, then run the phases in order."""
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # like Ctrl-C
    nc = await nats.connect(stack.nats.url, name="bench", connect_timeout=2)
    try:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=MINIMAL_STREAM,
                subjects=[MINIMAL_SUBJECTS],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            )
        )
        targets = {"hub": (stack.hub_url, HUB_STREAM), "minimal": (stack.minimal_url, MINIMAL_STREAM)}
        results = []
        for phase in args.phases:
            url, stream = targets[phase]
            print(f"# {phase}: {args.warmup} warm-up + {args.requests} requests at concurrency {args.concurrency}")
            results.append(await run_phase(phase, url, stream, stack, args, js))
        return results
    finally:
        await nc.close()


# --- report --------------------------------------------------------------------------------------


def failures_text(failures: Counter[str]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(failures.items())) or "0"


def report(results: list[PhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    """Print the tables; return the figures for --json."""
    print()
    head = f"{'phase':<8} {'requests':>8} {'accepted':>8} {'stored':>8} {'accepted/s':>10}"
    print(head + f" {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}  errors")
    for r in results:
        line = f"{r.name:<8} {r.load.sent:>8} {r.load.accepted:>8} {r.stored:>8} {r.accepted_per_s:>10.1f}"
        print(
            line + f" {r.latency(0.5):>8.2f} {r.latency(0.99):>8.2f} {r.latency(0.999):>8.2f}  "
            f"{failures_text(r.load.failures)}"
        )
    figures: dict[str, Any] = {"phases": [r.as_dict() for r in results]}
    by_name = {r.name: r for r in results}
    if {"hub", "minimal"} <= by_name.keys():
        hub, minimal = by_name["hub"], by_name["minimal"]
        throughput = hub.accepted_per_s / minimal.accepted_per_s if minimal.accepted_per_s else math.nan
        p99 = hub.latency(0.99) / minimal.latency(0.99)
        print(f"ratio hub/minimal: throughput {throughput:.2f}x, p99 {p99:.2f}x")
        figures["ratio"] = {"throughput": round(throughput, 3), "p99": round(p99, 3)}
    print()
    procs = list(results[0].cpu_ms_per_request) if results else []
    print("CPU ms per request " + " ".join(f"{p:>13}" for p in procs) + f" {'total':>8}")
    for r in results:
        cells = " ".join(f"{r.cpu_ms_per_request[p]:>13.3f}" for p in procs)
        print(f"{r.name:<18} {cells} {sum(r.cpu_ms_per_request.values()):>8.3f}")
    figures["setup"] = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "duration_cap_s": args.duration_cap,
        "body_bytes": BODY_BYTES,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "nats_sync_interval": "always",
    }
    return figures


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="timed requests per phase (default 20000)")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent client workers (default 50)")
    parser.add_argument("--duration-cap", type=float, default=60.0, help="hard time cap per load run, s (default 60)")
    parser.add_argument("--warmup", type=int, default=500, help="uncounted requests before each phase (default 500)")
    parser.add_argument("--phases", default="hub,minimal", help="comma-separated, in order (default hub,minimal)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server data and logs)")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if set(args.phases) - {"hub", "minimal"} or not args.phases:
        parser.error("--phases takes hub and/or minimal")
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--requests and --concurrency must be positive, --warmup not negative")
    if not 0 < args.duration_cap <= MAX_CAP_S:
        parser.error(f"--duration-cap must be in (0, {MAX_CAP_S:.0f}] s (signatures are signed before each phase)")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM cleans up like Ctrl-C
    try:
        with running_stack(args.keep) as stack:
            if args.keep:
                print(f"# data and logs in {stack.workdir}")
            try:
                results = asyncio.run(bench(stack, args))
            finally:
                signal.signal(signal.SIGTERM, _interrupt)  # closing the loop reset it to the default
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    figures = report(results, args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
