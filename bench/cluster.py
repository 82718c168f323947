"""Cluster cost: the hub's ingest on one nats-server and on a three-node JetStream cluster (R3), in one run.

    .venv/bin/python bench/cluster.py [--requests N] [--concurrency C] [--rounds R] [--warmup W]
                                      [--duration-cap S] [--phases hub-1n,hub-2w-1n,hub-3n,hub-2w-3n]
                                      [--client lean|aiohttp] [--json PATH] [--keep]

It starts one valkey-server, one nats-server (JetStream on file storage, `sync_interval: always`,
as bench/ingest.py) and a three-node JetStream cluster of the same binary (each node on its own
loopback ports, routed to the other two, `sync_interval: always` too), then four contenders, each
`connector-hub run --role ingress` with bench/ingest.py's GitHub and Standard Webhooks connectors:

- hub-1n / hub-2w-1n: one process / `--workers 2`, on the single node (HUB_STREAM_REPLICAS=1);
- hub-3n / hub-2w-3n: the same on the cluster: HUB_NATS_URL lists the three nodes and
  HUB_STREAM_REPLICAS=3, so each event is acknowledged once a quorum (two of three) stored it.

The phases run --rounds times, interleaved, with bench/ingest.py's load generator and signed
requests. Output: per phase and round accepted/s, p50/p99/p999, how many events HUB_EVENTS gained
(must equal accepted); the medians; the ratios cluster/single node (throughput and p99); CPU ms
per request of the hub's processes, of nats-server (the three nodes summed on the cluster), of
valkey-server and of the load generator; and the footprint per request: bytes HUB_EVENTS grew per
stored event (one replica), bytes nats-server wrote to storage (`write_bytes` of /proc/<pid>/io,
the three nodes summed), Valkey script calls and commands (those the scripts run included), keys
and memory per key. Everything listens on loopback and is stopped by PID at the end, also on error,
Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import uvloop
from entry import bench_workdir, run_bench, run_loop
from ingest import (
    CLK_TCK,
    HUB_STREAM,
    MAX_CAP_S,
    Contender,
    PhaseResult,
    PhaseSummary,
    accepted_per_s,
    child_env,
    cpu_of,
    failures_text,
    hub_process,
    p99,
    prepare,
    spawn,
    start_http_server,
    stop,
    summarize,
    tail,
)
from loadgen import run_load
from nats.aio.client import Client as NATS
from redis.asyncio import Redis

from hub.app.embedded import RunningServer, find_binary, start_nats, start_valkey

HOST = "127.0.0.1"
NODES = 3
CLUSTER_NAME = "bench"
MAX_PAYLOAD = 8 * 1024 * 1024  # what hub.app.embedded gives the single node
READY_TIMEOUT_S = 30.0
POLL_S = 0.05
OWN_VALKEY_COMMANDS = frozenset({"info", "dbsize"})
"""The bench's own reads of Valkey, left out of the hub's command counts."""


@dataclass(frozen=True)
class Phase:
    """One contender: how many workers, on which NATS."""

    workers: int
    cluster: bool
    text: str


PHASES = {
    "hub-1n": Phase(1, False, "connector-hub run --role ingress, one nats-server"),
    "hub-2w-1n": Phase(2, False, "connector-hub run --role ingress --workers 2, one nats-server"),
    "hub-3n": Phase(1, True, "connector-hub run --role ingress, three-node cluster, R3 streams"),
    "hub-2w-3n": Phase(2, True, "connector-hub run --role ingress --workers 2, three-node cluster, R3 streams"),
}
RATIOS = (("hub-3n", "hub-1n"), ("hub-2w-3n", "hub-2w-1n"))


# --- the three-node cluster ----------------------------------------------------------------------


@dataclass
class Node:
    """One nats-server of the cluster, stopped by its own PID."""

    name: str
    port: int
    monitor_port: int
    route_port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def config(self, peers: list[Node]) -> str:
        routes = ", ".join(json.dumps(f"nats-route://{HOST}:{p.route_port}") for p in peers if p is not self)
        return (
            f"server_name: {self.name}\n"
            f'listen: "{HOST}:{self.port}"\n'
            f'http: "{HOST}:{self.monitor_port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f"jetstream {{ store_dir: {json.dumps(str(self.store))}, sync_interval: always }}\n"
            f'cluster {{ name: {CLUSTER_NAME}, listen: "{HOST}:{self.route_port}", routes: [{routes}] }}\n'
        )

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this node knows of (its `/jsz`), or None."""
        url = f"http://{HOST}:{self.monitor_port}/jsz"
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=1) as reply:
            meta = json.loads(reply.read()).get("meta_cluster")
            leader = meta.get("leader") if isinstance(meta, dict) else None
            return leader if isinstance(leader, str) and leader else None
        return None


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free a moment ago: all bound at once, so none is given twice."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def start_cluster(cleanup: contextlib.ExitStack, root: Path) -> list[Node]:
    """Three routed JetStream nodes, each stop registered as it starts; wait for an agreed meta leader."""
    binary = find_binary("nats")
    ports = iter(free_ports(3 * NODES))
    nodes = [Node(f"n{i + 1}", next(ports), next(ports), next(ports), root / f"n{i + 1}") for i in range(NODES)]
    for node in nodes:
        node.store.mkdir(parents=True)
        conf = node.store / "nats.conf"
        conf.write_text(node.config(nodes))
        node.proc = spawn([str(binary), "-c", str(conf)], child_env({}), root / f"{node.name}.log")
        cleanup.callback(stop, node.proc)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not agreed_leader(nodes):
        for node in nodes:
            assert node.proc is not None
            if node.proc.poll() is not None:
                raise RuntimeError(
                    f"{node.name} exited ({node.proc.returncode}); log:\n{tail(root / f'{node.name}.log')}"
                )
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster had no JetStream meta leader within {READY_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)
    return nodes


def agreed_leader(nodes: list[Node]) -> bool:
    """Every node names the same meta leader."""
    leaders = {node.meta_leader() for node in nodes}
    return len(leaders) == 1 and None not in leaders


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything the bench started, by PID."""

    workdir: Path
    single: RunningServer
    nodes: list[Node]
    valkey: RunningServer
    contenders: dict[str, Contender]

    @property
    def cluster_urls(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def nats_pids(self, phase: Phase) -> list[int]:
        return [node.proc.pid for node in self.nodes if node.proc is not None] if phase.cluster else [self.single.pid]

    def pids(self, name: str) -> dict[str, list[int]]:
        return {
            "server": self.contenders[name].pids(),
            "nats-server": self.nats_pids(PHASES[name]),
            "valkey-server": [self.valkey.pid],
            "loadgen": [os.getpid()],
        }


def start_hub(cleanup: contextlib.ExitStack, name: str, stack_dir: Path, nats_url: str, redis: str) -> Contender:
    phase = PHASES[name]
    argv, env, url = hub_process(stack_dir, nats_url, redis, workers=phase.workers, name=name)
    env["HUB_STREAM_REPLICAS"] = str(NODES if phase.cluster else 1)
    return Contender(name, url, HUB_STREAM, [start_http_server(cleanup, name, argv, env, url, stack_dir)])


@contextlib.contextmanager
def running_stack(keep: bool, phases: list[str]) -> Iterator[Stack]:
    """Start Valkey, the single node, the cluster and every contender; stop each by PID on the way out."""
    with contextlib.ExitStack() as cleanup:
        workdir = bench_workdir(cleanup, "hub-bench-cluster-", keep)
        valkey = start_valkey(workdir / "servers")
        cleanup.callback(valkey.stop)
        single = start_nats(workdir / "servers", sync_interval="always")
        cleanup.callback(single.stop)
        nodes = start_cluster(cleanup, workdir / "cluster") if any(PHASES[p].cluster for p in phases) else []
        stack = Stack(workdir, single, nodes, valkey, {})
        for name in phases:
            nats_url = stack.cluster_urls if PHASES[name].cluster else single.url
            stack.contenders[name] = start_hub(cleanup, name, workdir, nats_url, valkey.url)
        yield stack


# --- measuring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamState:
    messages: int
    bytes: int


@dataclass(frozen=True)
class ValkeyState:
    scripts: int
    commands: int
    keys: int
    memory: int


async def stream_state(nc: NATS) -> StreamState:
    state = (await nc.jetstream().stream_info(HUB_STREAM)).state
    return StreamState(int(state.messages), int(state.bytes))


def disk_written(pids: list[int]) -> int:
    """Bytes the processes made the kernel write to storage (`write_bytes` of /proc/<pid>/io)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("write_bytes:"):
                    total += int(line.split()[1])
    return total


async def valkey_state(redis: Redis) -> ValkeyState:
    """Script calls, all commands (a script's own included: Valkey counts them too), keys, used memory."""
    stats = await redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}
    scripts = sum(n for name, n in calls.items() if name in ("evalsha", "eval"))
    commands = sum(n for name, n in calls.items() if name not in OWN_VALKEY_COMMANDS)
    memory = int((await redis.info("memory"))["used_memory"])
    return ValkeyState(scripts, commands, int(await redis.dbsize()), memory)


@dataclass
class ClusterPhaseResult:
    """A phase's figures (bench/ingest.py's) and its footprint per request."""

    result: PhaseResult
    stream_bytes_per_event: float
    nats_disk_bytes_per_request: float
    valkey_per_request: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return self.result.as_dict() | {
            "hub_events_bytes_per_event": round(self.stream_bytes_per_event, 1),
            "nats_disk_bytes_per_request": round(self.nats_disk_bytes_per_request, 1),
            "valkey_per_request": {k: round(v, 3) for k, v in self.valkey_per_request.items()},
        }


async def run_phase(
    name: str, round_no: int, stack: Stack, args: argparse.Namespace, nc: NATS, redis: Redis
) -> ClusterPhaseResult:
    """Warm up (not counted), then the timed load with CPU, stream and Valkey counts around it."""
    contender = stack.contenders[name]
    requests = prepare(args.warmup + args.requests)
    warm = await run_load(args.client, contender.url, requests[: args.warmup], args.concurrency, args.duration_cap)
    if args.warmup and not warm.accepted:
        raise RuntimeError(f"{name}: no request accepted in the warm-up: {dict(warm.failures)}")
    pids = stack.pids(name)
    stream_before, valkey_before = await stream_state(nc), await valkey_state(redis)
    cpu_before = {proc: cpu_of(p) for proc, p in pids.items()}
    disk_before = disk_written(pids["nats-server"])
    timed = await run_load(args.client, contender.url, requests[args.warmup :], args.concurrency, args.duration_cap)
    cpu_after = {proc: cpu_of(p) for proc, p in pids.items()}
    disk = disk_written(pids["nats-server"]) - disk_before
    stream_after, valkey_after = await stream_state(nc), await valkey_state(redis)
    sent = max(1, timed.sent)
    per_request = {proc: (cpu_after[proc] - cpu_before[proc]) * 1000 / CLK_TCK / sent for proc in pids}
    stored = stream_after.messages - stream_before.messages
    keys = valkey_after.keys - valkey_before.keys
    valkey = {
        "scripts": (valkey_after.scripts - valkey_before.scripts) / sent,
        "commands": (valkey_after.commands - valkey_before.commands) / sent,
        "keys": keys / sent,
        "bytes_per_key": (valkey_after.memory - valkey_before.memory) / keys if keys > 0 else 0.0,
    }
    per_event = (stream_after.bytes - stream_before.bytes) / stored if stored > 0 else 0.0
    result = PhaseResult(name, round_no, timed, stored, per_request)
    return ClusterPhaseResult(result, per_event, disk / sent, valkey)


async def bench(stack: Stack, args: argparse.Namespace) -> list[ClusterPhaseResult]:
    """The phases in order, `--rounds` times over (interleaved)."""
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # like Ctrl-C
    single = await nats.connect(stack.single.url, name="bench", connect_timeout=2)
    cluster = (
        await nats.connect(stack.cluster_urls.split(","), name="bench", connect_timeout=2) if stack.nodes else None
    )
    redis = Redis.from_url(stack.valkey.url)
    try:
        results = []
        for round_no in range(1, args.rounds + 1):
            for name in args.phases:
                print(
                    f"# round {round_no}/{args.rounds} {name}: {args.warmup} warm-up + {args.requests} requests at "
                    f"concurrency {args.concurrency}, {args.client} client ({PHASES[name].text}); "
                    f"load average {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                nc = cluster if PHASES[name].cluster and cluster is not None else single
                results.append(await run_phase(name, round_no, stack, args, nc, redis))
        return results
    finally:
        await redis.aclose()
        await single.close()
        if cluster is not None:
            await cluster.close()


# --- report --------------------------------------------------------------------------------------


def report(results: list[ClusterPhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    """Print the tables (each figure the median over the rounds); return the figures for --json."""
    plain = [r.result for r in results]
    summaries = summarize(plain)
    print()
    print(f"{'phase':<10} {'round':>5} {'requests':>8} {'accepted':>8} {'stored':>8} {'accepted/s':>10}", end="")
    print(f" {'p50 ms':>8} {'p99 ms':>8} {'p999 ms':>8}  errors")
    for r in plain:
        print(
            f"{r.name:<10} {r.round:>5} {r.load.sent:>8} {r.load.accepted:>8} {r.stored:>8} {r.accepted_per_s:>10.1f} "
            f"{r.latency(0.5):>8.2f} {r.latency(0.99):>8.2f} {r.latency(0.999):>8.2f}  {failures_text(r.load.failures)}"
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
            figures["ratios"][f"{name}/{base}"] = print_ratio(summaries[name], summaries[base])
    print()
    procs = list(plain[0].cpu_ms_per_request) if plain else []
    print("CPU ms per request (median) " + " ".join(f"{p:>13}" for p in procs) + f" {'total':>8}")
    for name, summary in summaries.items():
        cells = [summary.figure(lambda r, p=p: r.cpu_ms_per_request[p]) for p in procs]  # type: ignore[misc]
        print(f"{name:<27} " + " ".join(f"{c:>13.3f}" for c in cells) + f" {sum(cells):>8.3f}")
    print()
    print("footprint (median)   HUB_EVENTS B/event  nats disk B/req  valkey scripts/req  commands/req  keys/req  B/key")
    for name in summaries:
        mine = [r for r in results if r.result.name == name]
        valkey = {k: statistics.median([r.valkey_per_request[k] for r in mine]) for k in mine[0].valkey_per_request}
        per_event = statistics.median([r.stream_bytes_per_event for r in mine])
        disk = statistics.median([r.nats_disk_bytes_per_request for r in mine])
        print(
            f"{name:<20} {per_event:>19.0f} {disk:>16.0f} {valkey['scripts']:>19.2f} "
            f"{valkey['commands']:>13.2f} {valkey['keys']:>9.2f} {valkey['bytes_per_key']:>6.0f}"
        )
    figures["setup"] = {
        "phases": {name: PHASES[name].text for name in args.phases},
        "rounds": args.rounds,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "client": args.client,
        "warmup": args.warmup,
        "duration_cap_s": args.duration_cap,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "nats_sync_interval": "always",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    return figures


def print_ratio(ours: PhaseSummary, theirs: PhaseSummary) -> dict[str, Any]:
    throughput = ours.figure(accepted_per_s) / theirs.figure(accepted_per_s)
    latency = ours.figure(p99) / theirs.figure(p99)
    per_round = [a.accepted_per_s / b.accepted_per_s for a, b in zip(ours.rounds, theirs.rounds, strict=True)]
    rounds_text = " ".join(f"{x:.2f}" for x in per_round)
    print(
        f"ratio {ours.name}/{theirs.name}: throughput {throughput:.2f}x (per round: {rounds_text}), p99 {latency:.2f}x"
    )
    return {"throughput": round(throughput, 3), "p99": round(latency, 3), "per_round": [round(x, 3) for x in per_round]}


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5_000, help="timed requests per phase (default 5000)")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent client connections (default 50)")
    parser.add_argument("--duration-cap", type=float, default=60.0, help="hard time cap per load run, s (default 60)")
    parser.add_argument("--warmup", type=int, default=500, help="uncounted requests before each phase (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="times every phase runs, interleaved (default 3)")
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated, in order (default {','.join(PHASES)})"
    )
    parser.add_argument("--client", choices=("lean", "aiohttp"), default="lean", help="load generator (default lean)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server data and logs)")
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not args.phases or set(args.phases) - PHASES.keys() or len(set(args.phases)) != len(args.phases):
        parser.error(f"--phases takes some of {', '.join(PHASES)}, each once")
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0 or not 1 <= args.rounds <= 10:
        parser.error("--requests and --concurrency must be positive, --warmup not negative, --rounds 1-10")
    if not 0 < args.duration_cap <= MAX_CAP_S:
        parser.error(f"--duration-cap must be in (0, {MAX_CAP_S:.0f}] s (signatures are signed before each phase)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def measure() -> list[ClusterPhaseResult]:
        with running_stack(args.keep, args.phases) as stack:
            return run_loop(uvloop.run, bench(stack, args))

    return run_bench(measure, lambda results: report(results, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
