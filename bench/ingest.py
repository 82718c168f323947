"""Ingest benchmark: `connector-hub run` against a minimal JetStream-publishing handler, same machine, same run.

    .venv/bin/python bench/ingest.py [--requests N] [--concurrency C] [--rounds R] [--phases ...]
                                     [--client lean|aiohttp] [--compare REF] [--json PATH] [--keep]

It starts its own nats-server (JetStream on file storage, `sync_interval: always`, as the hub's
embedded default) and valkey-server in a temporary directory, then every phase's HTTP server, each
in its own process or processes, all publishing to that NATS (bench/README.md describes them):

- trivial: `bench/minimal_server.py --trivial`, 202 without reading the body;
- minimal: `bench/minimal_server.py`, which reads the body, publishes it to the BENCH_MINIMAL
  stream with a `Nats-Msg-Id` and awaits the PubAck;
- hub: the real `connector-hub run --role ingress` (HUB_NATS_URL/HUB_REDIS_URL set), with a GitHub
  and a Standard Webhooks connector; half the requests go to each. Full path: verify, dedupe claim
  in Valkey, envelope, publish with PubAck, done mark;
- minimal-2p and hub-2w: the same in two processes sharing the port;
- hub-ref (with --compare REF): the hub as it is at git REF, on the same servers, to measure a
  change against its base in one run (hub/hub-ref).

The load generator (bench/loadgen.py) runs in this process: C keep-alive connections share a
counter over N pre-signed requests (4 KB JSON bodies, unique delivery ids, valid signatures), after
a warm-up that is not counted. The phases run --rounds times, interleaved. Every load run is
bounded by --duration-cap. Only 2xx answers count as accepted.

Output: per phase and round requests, accepted/s, p50/p99/p999 latency of accepted requests,
errors, and how many events the stream gained (must equal accepted); the medians; the ratios
hub/minimal, hub-2w/minimal-2p (and hub/hub-ref); and CPU ms per request of every process (from
/proc/<pid>/stat utime+stime, over the timed part only). Everything listens on loopback and is
stopped by PID at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import orjson
import uvloop
from entry import run_bench, run_loop, start_servers
from loadgen import LoadResult, Request, run_load
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig

from adapters.base import SigningSecret, TestRequest
from adapters.webhooks.github import GitHubAdapter
from adapters.webhooks.standard_webhooks import StandardWebhooksAdapter
from hub.app.embedded import RunningServer, die_with_parent, free_port

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


def prepare(count: int) -> list[Request]:
    """`count` signed requests, alternating GitHub and Standard Webhooks, each with a unique id."""
    github, standard = GitHubAdapter.configure(), StandardWebhooksAdapter.configure()
    gh_secret = SigningSecret("bench", GITHUB_SECRET.encode())
    sw_secret = SigningSecret("bench", STANDARD_SECRET.encode())
    now = time.time()
    prepared: list[Request] = []
    for n in range(count):
        if n % 2 == 0:
            path, request = GITHUB_PATH, github_request(github, gh_secret, now, n)
        else:
            path, request = STANDARD_PATH, standard_request(standard, sw_secret, now, n)
        request.headers[ID_HEADER] = uuid.uuid4().hex
        prepared.append((path, request.headers, request.body))
    return prepared


# --- processes -----------------------------------------------------------------------------------


def spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path = BENCH_DIR.parent) -> subprocess.Popen[bytes]:
    """Start a child in its own session (Ctrl-C reaches the bench, which stops children in order).

    `python -m hub` imports the `hub` package of `cwd` before any other, so `cwd` picks the code."""
    with log.open("wb") as log_file:
        return subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
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
class Contender:
    """One HTTP server under test: its processes (started by the bench) and where it listens."""

    name: str
    url: str
    stream: str
    procs: list[subprocess.Popen[bytes]]

    def pids(self) -> list[int]:
        """Its processes and, for `run --workers N`, the supervisor's workers."""
        pids = [proc.pid for proc in self.procs]
        return pids + [child for pid in pids for child in children(pid)]


@dataclass
class Stack:
    """Everything the bench started, by PID."""

    workdir: Path
    nats: RunningServer
    valkey: RunningServer
    contenders: dict[str, Contender]

    def pids(self, contender: Contender) -> dict[str, list[int]]:
        return {
            "server": contender.pids(),
            "nats-server": [self.nats.pid],
            "valkey-server": [self.valkey.pid],
            "loadgen": [os.getpid()],
        }


def children(pid: int) -> list[int]:
    """The child PIDs of a process (Linux /proc; none elsewhere)."""
    with contextlib.suppress(OSError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


PHASES = {
    "trivial": "aiohttp handler answering 202 without reading the body, 1 process",
    "minimal": "minimal pipeline (read, publish, PubAck, 202), 1 process",
    "hub": "connector-hub run --role ingress",
    "minimal-2p": "minimal pipeline, 2 processes sharing the port (SO_REUSEPORT)",
    "hub-2w": "connector-hub run --role ingress --workers 2",
    "hub-ref": "connector-hub run --role ingress, the code of the git ref given to --compare",
}
DEFAULT_PHASES = [name for name in PHASES if name != "hub-ref"]
RATIOS = (("hub", "minimal"), ("hub-2w", "minimal-2p"), ("hub", "hub-ref"))
SOURCE_PACKAGES = ("hub", "adapters", "events", "schemas")


def hub_process(
    workdir: Path, nats_url: str, redis_url: str, workers: int, name: str = "hub"
) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and base URL of `connector-hub run --role ingress` on the bench's servers.

    Only the ingress role: the gate consumers would route the bench's events in the same process
    (bench/gate.py measures them), and the admin API would be one more listener (port 0: none).
    """
    connectors = workdir / "connectors.yaml"
    connectors.write_text(CONNECTORS_YAML)
    port = free_port()
    env = child_env(
        {
            "HUB_NATS_URL": nats_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_DATA_DIR": str(workdir / name),
            "HUB_CONNECTORS": str(connectors),
            "HUB_HTTP_PORT": str(port),
            "HUB_ADMIN_PORT": "0",
            "HUB_LOG_FORMAT": "json",
            "HUB_WORKERS": str(workers),
            "BENCH_GITHUB_SECRET": GITHUB_SECRET,
            "BENCH_STANDARD_SECRET": STANDARD_SECRET,
        }
    )
    return [sys.executable, "-m", "hub", "run", "--role", "ingress"], env, f"http://127.0.0.1:{port}"


def minimal_argv(nats_url: str, port: int, *extra: str) -> list[str]:
    """argv of bench/minimal_server.py."""
    return [sys.executable, str(BENCH_DIR / "minimal_server.py"), "--nats-url", nats_url, "--port", str(port), *extra]


def start_http_server(
    cleanup: contextlib.ExitStack,
    name: str,
    argv: list[str],
    env: dict[str, str],
    url: str,
    workdir: Path,
    cwd: Path = BENCH_DIR.parent,
) -> subprocess.Popen[bytes]:
    """Spawn, register its stop (before waiting, so an interrupt still stops it), wait for /healthz."""
    log = workdir / f"{name}.log"
    proc = spawn(argv, env, log, cwd)
    cleanup.callback(stop, proc)
    wait_healthy(name, f"{url}/healthz", proc, log)
    return proc


def export_source(ref: str, into: Path) -> Path:
    """The hub's packages as they are at git `ref`, extracted under `into`."""
    git = shutil.which("git")
    if git is None:
        raise RuntimeError("--compare needs git on PATH")
    archive = subprocess.run(
        [git, "-C", str(BENCH_DIR.parent), "archive", "--format=tar", ref, "--", *SOURCE_PACKAGES],
        capture_output=True,
        check=False,
    )
    if archive.returncode:
        raise RuntimeError(f"--compare {ref}: {archive.stderr.decode(errors='replace').strip()}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def start_contender(
    cleanup: contextlib.ExitStack, name: str, workdir: Path, nats: str, redis: str, compare: str | None
) -> Contender:
    """Start the server(s) of one phase."""
    if name.startswith("hub"):
        argv, env, url = hub_process(workdir, nats, redis, workers=2 if name == "hub-2w" else 1, name=name)
        code = BENCH_DIR.parent
        if name == "hub-ref":
            assert compare is not None  # parse_args adds the phase with the option
            code = export_source(compare, workdir / "hub-ref-source")
        return Contender(name, url, HUB_STREAM, [start_http_server(cleanup, name, argv, env, url, workdir, code)])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if name == "trivial":
        argv = minimal_argv(nats, port, "--trivial")
        return Contender(name, url, "", [start_http_server(cleanup, name, argv, child_env({}), url, workdir)])
    count = 2 if name == "minimal-2p" else 1
    extra = ("--reuse-port",) if count > 1 else ()
    procs = [
        start_http_server(cleanup, f"{name}-{i}", minimal_argv(nats, port, *extra), child_env({}), url, workdir)
        for i in range(count)
    ]
    return Contender(name, url, MINIMAL_STREAM, procs)


@contextlib.contextmanager
def running_stack(keep: bool, phases: list[str], compare: str | None = None) -> Iterator[Stack]:
    """Start NATS, Valkey and every phase's server; stop each by PID on the way out."""
    with contextlib.ExitStack() as cleanup:
        servers = start_servers(cleanup, "hub-bench-", keep)
        contenders = {
            name: start_contender(cleanup, name, servers.workdir, servers.nats.url, servers.valkey.url, compare)
            for name in phases
        }
        yield Stack(servers.workdir, servers.nats, servers.valkey, contenders)


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
class PhaseResult:
    """One phase's figures."""

    name: str
    round: int
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
            "round": self.round,
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


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    if not stream:
        return 0
    return int((await js.stream_info(stream)).state.messages)


def cpu_of(pids: list[int]) -> int:
    """CPU ticks of the processes still alive."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_ticks(pid)
    return total


async def run_phase(
    contender: Contender, round_no: int, stack: Stack, args: argparse.Namespace, js: JetStreamContext
) -> PhaseResult:
    """Warm up (not counted), then the timed load with CPU and stream counts around it."""
    requests = prepare(args.warmup + args.requests)
    warm = await run_load(args.client, contender.url, requests[: args.warmup], args.concurrency, args.duration_cap)
    if args.warmup and not warm.accepted:
        raise RuntimeError(f"{contender.name}: no request accepted in the warm-up: {dict(warm.failures)}")
    pids = stack.pids(contender)
    before_msgs = await stream_messages(js, contender.stream)
    before_cpu = {proc: cpu_of(p) for proc, p in pids.items()}
    timed = await run_load(args.client, contender.url, requests[args.warmup :], args.concurrency, args.duration_cap)
    after_cpu = {proc: cpu_of(p) for proc, p in pids.items()}
    stored = await stream_messages(js, contender.stream) - before_msgs if contender.stream else timed.accepted
    per_request = {proc: (after_cpu[proc] - before_cpu[proc]) * 1000 / CLK_TCK / max(1, timed.sent) for proc in pids}
    return PhaseResult(contender.name, round_no, timed, stored, per_request)


async def bench(stack: Stack, args: argparse.Namespace) -> list[PhaseResult]:
    """Create the minimal stream, then run the phases in order, `--rounds` times over (interleaved)."""
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
        results = []
        for round_no in range(1, args.rounds + 1):
            for phase in args.phases:
                print(
                    f"# round {round_no}/{args.rounds} {phase}: {args.warmup} warm-up + {args.requests} requests "
                    f"at concurrency {args.concurrency}, {args.client} client ({PHASES[phase]})",
                    flush=True,
                )
                results.append(await run_phase(stack.contenders[phase], round_no, stack, args, js))
        return results
    finally:
        await nc.close()


# --- report --------------------------------------------------------------------------------------


def failures_text(failures: Counter[str]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(failures.items())) or "0"


@dataclass
class PhaseSummary:
    """A phase over its rounds: the median round by accepted/s, and every round's figures."""

    name: str
    rounds: list[PhaseResult]

    @property
    def median(self) -> PhaseResult:
        ordered = sorted(self.rounds, key=lambda r: r.accepted_per_s)
        return ordered[(len(ordered) - 1) // 2]

    def figure(self, pick: Callable[[PhaseResult], float]) -> float:
        return statistics.median(pick(r) for r in self.rounds)


def summarize(results: list[PhaseResult]) -> dict[str, PhaseSummary]:
    by_name: dict[str, list[PhaseResult]] = {}
    for result in results:
        by_name.setdefault(result.name, []).append(result)
    return {name: PhaseSummary(name, rounds) for name, rounds in by_name.items()}


def accepted_per_s(r: PhaseResult) -> float:
    return r.accepted_per_s


def p99(r: PhaseResult) -> float:
    return r.latency(0.99)


def report(results: list[PhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    """Print the tables (each figure the median over the rounds); return the figures for --json."""
    summaries = summarize(results)
    print()
    print(f"{'phase':<11} {'round':>5} {'requests':>8} {'accepted':>8} {'stored':>8} {'accepted/s':>10}", end="")
    print(f" {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}  errors")
    for r in results:
        line = f"{r.name:<11} {r.round:>5} {r.load.sent:>8} {r.load.accepted:>8} {r.stored:>8}"
        print(
            line + f" {r.accepted_per_s:>10.1f} {r.latency(0.5):>8.2f} {r.latency(0.99):>8.2f} "
            f"{r.latency(0.999):>8.2f}  {failures_text(r.load.failures)}"
        )
    print()
    print(f"median of {args.rounds} round(s)   accepted/s   p50 ms   p99 ms  p999 ms")
    for name, summary in summaries.items():
        print(
            f"{name:<22} {summary.figure(accepted_per_s):>12.1f} {summary.figure(lambda r: r.latency(0.5)):>8.2f} "
            f"{summary.figure(p99):>8.2f} {summary.figure(lambda r: r.latency(0.999)):>8.2f}"
        )
    figures: dict[str, Any] = {"rounds": [r.as_dict() for r in results], "ratios": {}}
    for name, base in RATIOS:
        if {name, base} <= summaries.keys():
            ours, theirs = summaries[name], summaries[base]
            throughput = ours.figure(accepted_per_s) / theirs.figure(accepted_per_s)
            latency = ours.figure(p99) / theirs.figure(p99)
            per_round = [a.accepted_per_s / b.accepted_per_s for a, b in zip(ours.rounds, theirs.rounds, strict=True)]
            rounds_text = " ".join(f"{x:.2f}" for x in per_round)
            print(f"ratio {name}/{base}: throughput {throughput:.2f}x (per round: {rounds_text}), p99 {latency:.2f}x")
            figures["ratios"][f"{name}/{base}"] = {
                "throughput": round(throughput, 3),
                "p99": round(latency, 3),
                "throughput_per_round": [round(x, 3) for x in per_round],
            }
    print()
    procs = list(results[0].cpu_ms_per_request) if results else []
    print("CPU ms per request (median) " + " ".join(f"{p:>13}" for p in procs) + f" {'total':>8}")
    for name, summary in summaries.items():
        cells = [summary.figure(lambda r, p=p: r.cpu_ms_per_request[p]) for p in procs]  # type: ignore[misc]
        print(f"{name:<27} " + " ".join(f"{c:>13.3f}" for c in cells) + f" {sum(cells):>8.3f}")
    figures["setup"] = {
        "phases": {name: PHASES[name] for name in args.phases},
        "compare": args.compare,
        "rounds": args.rounds,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "client": args.client,
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
    parser.add_argument("--requests", type=int, default=10_000, help="timed requests per phase (default 10000)")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent client workers (default 50)")
    parser.add_argument("--duration-cap", type=float, default=60.0, help="hard time cap per load run, s (default 60)")
    parser.add_argument("--warmup", type=int, default=500, help="uncounted requests before each phase (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="times every phase runs, interleaved (default 3)")
    parser.add_argument(
        "--phases",
        default=",".join(DEFAULT_PHASES),
        help=f"comma-separated, in order (default {','.join(DEFAULT_PHASES)}; hub-ref comes with --compare)",
    )
    parser.add_argument(
        "--client",
        choices=("lean", "aiohttp"),
        default="lean",
        help="load generator (default lean: ~0.04 ms of CPU per request; aiohttp: ~0.2 ms)",
    )
    parser.add_argument(
        "--compare",
        metavar="REF",
        help="also run the hub as it is at this git ref (phase hub-ref, after hub) and print hub/hub-ref",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server data and logs)")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if args.compare and "hub-ref" not in args.phases:
        at = args.phases.index("hub") + 1 if "hub" in args.phases else len(args.phases)
        args.phases.insert(at, "hub-ref")
    if "hub-ref" in args.phases and not args.compare:
        parser.error("phase hub-ref needs --compare REF")
    if set(args.phases) - PHASES.keys() or not args.phases:
        parser.error(f"--phases takes some of: {', '.join(PHASES)}")
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0 or not 1 <= args.rounds <= 10:
        parser.error("--requests and --concurrency must be positive, --warmup not negative, --rounds 1-10")
    if not 0 < args.duration_cap <= MAX_CAP_S:
        parser.error(f"--duration-cap must be in (0, {MAX_CAP_S:.0f}] s (signatures are signed before each phase)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def measure() -> list[PhaseResult]:
        with running_stack(args.keep, args.phases, args.compare) as stack:
            return run_loop(uvloop.run, bench(stack, args))

    return run_bench(measure, lambda results: report(results, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
