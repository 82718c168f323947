"""Gate benchmark: the gate path (`connector-hub run --role policy,dispatch`) against a bare JetStream relay.

    .venv/bin/python bench/gate.py [--events N] [--rate R] [--duration-cap S] [--journeys on|off|both]
                                   [--only NAMES] [--json PATH]

It starts its own nats-server (JetStream on file storage, `sync_interval: always`, as the hub's
embedded default) and valkey-server in a temporary directory (the helpers of `bench/ingest.py`),
then, one at a time, four contenders, each its own process, each consuming its own input stream and
delivering to a core NATS subject this process subscribes to:

- gate: the real `connector-hub run --role policy,dispatch` with one connector, one route
  (`bench.>` to the subject `bench.gate.out`, no limits) and an allow-all Policy. Events are
  published into HUB_EVENTS exactly as the ingress publishes them; the policy consumer publishes an
  invocation to HUB_INVOCATIONS (PubAck), the dispatch consumer admits it (Valkey) and publishes
  it to the target subject. Two JetStream hops.
- relay: `bench/relay_server.py`, a durable pull consumer on BENCH_RELAY_IN that republishes each
  message (body and headers) to `bench.relay.out`, flushes and acks. One JetStream hop.
- relay-js: `bench/relay_server.py --out stream`, the relay with a stored republish: each message
  is published with JetStream to `bench.relay.out`, which the BENCH_RELAY_OUT stream stores
  (PubAck awaited), then acked. One JetStream hop that, as the gate's policy consumer does, stores
  what it hands on.
- relay2: `bench/relay_server.py --hops 2`, the gate's two JetStream hops without its logic: the
  first consumer stores each message in BENCH_RELAY_MID (PubAck awaited) and acks, the second
  consumes that and republishes as the relay does. The ceiling of the gate's design.

- gate-nj (with `--journeys off` or `both`): the same gate writing no journey records
  (`start_gate(journeys=False)`, patched in by a `python -c` wrapper: the switch is no setting).
  With `--journeys both` the report prints gate/gate-nj, what journeys cost, from the same run.

`--only gate,gate-nj` runs just those contenders.

The report prints gate/relay, the issue's ratio, and beside it gate/relay-js, gate/relay2 and
relay2/relay: a relay that stores nothing is bound by CPU, one that stores by the disk's fsyncs
(the `published/s` column: how fast the bench itself stores events, at most 256 awaiting PubAck).

Phases, the same pacing for every contender, each with a fresh contender process and fresh streams
(so counts are exact and nothing is replayed), after an uncounted warm-up:

- throughput, --rounds times with the contenders interleaved (fresh events each round; the report
  gives each contender's median and the ratios of the medians): after the warm-up the contender is
  stopped, N events are stored in its input stream
  (published as fast as possible, at most 256 awaiting their PubAck) and a fresh contender process
  drains them, until every one has arrived at the subscriber or --duration-cap passed. delivered/s
  = delivered / (last delivery - first delivery), and CPU is counted over the same span: the
  contender's capacity alone, neither capped by the publisher nor sharing the disk's fsyncs with it.
  Each event must arrive exactly once (by envelope id).
- latency: --latency-events events paced at --rate; publish -> delivery per event, and for the gate
  the split at the invocation's stored timestamp in HUB_INVOCATIONS (hop 1: event -> invocation,
  hop 2: invocation -> delivery). One machine, so the wall clocks agree.

CPU ms per delivered event of the contender, nats-server, valkey-server and this process come from
/proc/<pid>/stat (utime+stime) over the timed part. Everything listens on loopback; every process
is stopped by its PID at the end, also on error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import orjson
from entry import run_bench, run_loop, start_servers
from ingest import (
    BENCH_DIR,
    CLK_TCK,
    DUPLICATE_WINDOW_S,
    child_env,
    cpu_ticks,
    padded_json,
    percentile,
    spawn,
    stop,
    tail,
)
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from events.envelope import Envelope, rfc3339
from events.streams import AUDIT_STREAM, DLQ_STREAM, EVENTS_STREAM, INVOCATIONS_STREAM, JOURNEYS_STREAM
from events.subjects import EVENTS_PREFIX, event_subject
from hub.app.embedded import RunningServer
from hub.gate.consumers import DISPATCH_DURABLE, POLICY_DURABLE
from hub.runtime import natsflush

TENANT = "bench"
CONNECTOR = "gh"
ROUTE = "out"
EVENT_TYPE = "bench.load"
GATE_OUT = "bench.gate.out"
RELAY_OUT = "bench.relay.out"
RELAY_STREAM = "BENCH_RELAY_IN"
RELAY_PREFIX = "bench.relay.in"
RELAY_DURABLE = "bench-relay"
MID_STREAM = "BENCH_RELAY_MID"
MID_PREFIX = "bench.relay.mid"
MID_DURABLE = "bench-relay-mid"
RELAY_OUT_STREAM = "BENCH_RELAY_OUT"
DATA_BYTES = 4096
GATE_STREAMS = (EVENTS_STREAM, INVOCATIONS_STREAM, DLQ_STREAM, AUDIT_STREAM, JOURNEYS_STREAM)
NO_JOURNEYS = (
    "import functools, sys; import hub.app.roles as roles; "
    "roles.start_gate = functools.partial(roles.start_gate, journeys=False); "
    "from hub.cli.parser import main; sys.exit(main())"
)
"""`connector-hub` with the gate's journey records off (for the bench only: it is no setting)."""
CONTENDERS = ("gate", "gate-nj", "relay", "relay-js", "relay2")
RELAY_SUMMARY = re.compile(r"hop \d+: relayed \d+, failed \d+$")
IN_FLIGHT = 256
PUBLISH_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 30.0
WARMUP_TIMEOUT_S = 30.0
MAX_CAP_S = 600.0
READ_CONCURRENCY = 64
GITHUB_SECRET = uuid.uuid4().hex
SPECS_YAML = f"""\
apiVersion: hub/v1
kind: Connector
metadata: {{name: {CONNECTOR}, tenant: {TENANT}}}
spec:
  type: webhook
  provider: github
  secrets: [{{secretRef: {{source: env, name: BENCH_GITHUB_SECRET}}}}]
  routes:
    - name: {ROUTE}
      match: {{types: ["bench.>"]}}
      target: {{subject: {GATE_OUT}}}
---
apiVersion: hub/v1
kind: Policy
metadata: {{name: bench, tenant: {TENANT}}}
spec:
  allowedSubjects: [bench]
  rules:
    - {{name: all, effect: allow}}
"""


# --- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One envelope as the ingress would publish it: id, body, headers, and the subject per contender."""

    id: str
    body: bytes
    headers: dict[str, str]
    gate_subject: str
    relay_subject: str


def make_events(count: int, tag: str) -> list[Event]:
    """`count` envelopes of one connector with ~4 KB `data`, as `tests/hub/gate/harness.py` builds them."""
    events = []
    subject = event_subject(TENANT, CONNECTOR, EVENT_TYPE)
    relay_subject = RELAY_PREFIX + subject.removeprefix(EVENTS_PREFIX)
    for n in range(count):
        now = rfc3339(time.time())
        data = padded_json({"bench_seq": n, "phase": tag}, DATA_BYTES)
        envelope = Envelope(
            id=uuid.uuid4().hex,
            source=f"hub://{TENANT}/{CONNECTOR}",
            type=EVENT_TYPE,
            time=now,
            data=orjson.Fragment(data),
            hubtenant=TENANT,
            hubconnector=CONNECTOR,
            hubprovider="github",
            hubreceivedat=now,
            hubverified="hmac-sha256",
            hubbodysha256=hashlib.sha256(data).hexdigest(),
        )
        headers = envelope.to_headers() | {"Nats-Msg-Id": f"{TENANT}:{CONNECTOR}:{envelope.id}"}
        events.append(Event(envelope.id, envelope.to_json(), headers, subject, relay_subject))
    return events


# --- contenders ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """How to start one contender, where it reads and where it delivers."""

    name: str
    out_subject: str
    consumers: tuple[tuple[str, str], ...]
    """(stream, durable) pairs that must exist with a waiting pull request before publishing."""
    streams: tuple[str, ...]
    """Deleted before each phase (the gate recreates its own at start-up, the bench the relay's)."""
    argv: list[str]
    env: dict[str, str]

    def subject(self, event: Event) -> str:
        return event.gate_subject if is_gate(self.name) else event.relay_subject


def is_gate(name: str) -> bool:
    """`gate` and `gate-nj` (the gate without journeys)."""
    return name.startswith("gate")


def contenders(workdir: Path, nats_url: str, redis_url: str, journeys: str, only: list[str]) -> list[Contender]:
    specs = workdir / "connectors.yaml"
    specs.write_text(SPECS_YAML)
    gate_env = child_env(
        {
            "HUB_NATS_URL": nats_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_CONNECTORS": str(specs),
            "HUB_HTTP_HOST": "127.0.0.1",
            "HUB_HTTP_PORT": "0",
            "HUB_ADMIN_PORT": "0",
            "HUB_DATA_DIR": str(workdir / "hub"),
            "HUB_LOG_FORMAT": "json",
            "HUB_LOG_LEVEL": "WARNING",
            "BENCH_GITHUB_SECRET": GITHUB_SECRET,
        }
    )
    gate_consumers = ((EVENTS_STREAM, POLICY_DURABLE), (INVOCATIONS_STREAM, DISPATCH_DURABLE))
    gate_args = ["run", "--role", "policy,dispatch"]
    hub_argv = [sys.executable, "-m", "hub", *gate_args]
    gate = Contender("gate", GATE_OUT, gate_consumers, GATE_STREAMS, hub_argv, gate_env)
    gate_nj = Contender(
        "gate-nj", GATE_OUT, gate_consumers, GATE_STREAMS, [sys.executable, "-c", NO_JOURNEYS, *gate_args], gate_env
    )
    relay_argv = [
        sys.executable,
        str(BENCH_DIR / "relay_server.py"),
        "--nats-url",
        nats_url,
        "--out-subject",
        RELAY_OUT,
    ]
    relay = Contender("relay", RELAY_OUT, ((RELAY_STREAM, RELAY_DURABLE),), (RELAY_STREAM,), relay_argv, child_env({}))
    relay_js = Contender(
        "relay-js",
        RELAY_OUT,
        ((RELAY_STREAM, RELAY_DURABLE),),
        (RELAY_STREAM, RELAY_OUT_STREAM),
        [*relay_argv, "--out", "stream"],
        child_env({}),
    )
    relay2 = Contender(
        "relay2",
        RELAY_OUT,
        ((RELAY_STREAM, RELAY_DURABLE), (MID_STREAM, MID_DURABLE)),
        (RELAY_STREAM, MID_STREAM),
        [*relay_argv, "--hops", "2"],
        child_env({}),
    )
    gates = {"on": [gate], "off": [gate_nj], "both": [gate, gate_nj]}[journeys]
    return [c for c in [*gates, relay, relay_js, relay2] if not only or c.name in only]


async def reset_streams(js: JetStreamContext, contender: Contender) -> None:
    """Delete the contender's streams (and so its durable consumers); recreate the relays' streams."""
    for stream in contender.streams:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    subjects = {RELAY_STREAM: RELAY_PREFIX + ".>", MID_STREAM: MID_PREFIX + ".>", RELAY_OUT_STREAM: RELAY_OUT}
    for stream in contender.streams:
        if stream in subjects:
            config = StreamConfig(
                name=stream,
                subjects=[subjects[stream]],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            )
            await js.add_stream(config)


async def wait_ready(js: JetStreamContext, contender: Contender, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until every consumer of the contender exists and has a waiting pull request (bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = list(contender.consumers)
    while pending and time.monotonic() < deadline and proc.poll() is None:
        stream, durable = pending[0]
        with contextlib.suppress(nats.errors.Error, TimeoutError):  # no stream or consumer yet
            if (await js.consumer_info(stream, durable)).num_waiting:
                pending.pop(0)
                continue
        await asyncio.sleep(0.05)
    if pending:
        raise RuntimeError(
            f"{contender.name}: consumer {pending[0][1]} on {pending[0][0]} not ready after {READY_TIMEOUT_S:.0f}s "
            f"(exit {proc.poll()}); log:\n{tail(log)}"
        )


# --- measuring -----------------------------------------------------------------------------------


class Collector:
    """The core subscriber on a contender's output subject: first arrival time per envelope id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self._expected: set[str] = set()
        self._seen = 0
        self.done = asyncio.Event()
        self.first = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        now = time.time()
        event_id = (msg.headers or {}).get("ce-id") or orjson.loads(msg.data)["id"]
        if event_id in self.arrivals:
            self.duplicates += 1
            return
        self.arrivals[event_id] = now
        if event_id in self._expected:
            self._seen += 1
            self.first.set()
            if self._seen >= len(self._expected):
                self.done.set()

    def expect(self, ids: list[str]) -> None:
        """Set `done` once every one of `ids` has arrived."""
        self._expected = set(ids)
        self._seen = sum(1 for event_id in self._expected if event_id in self.arrivals)
        self.done = asyncio.Event()
        self.first = asyncio.Event()
        if self._seen >= len(self._expected):
            self.done.set()

    async def wait(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), max(0.0, timeout_s))
        return self.done.is_set()


@dataclass
class Published:
    """What a publisher did: when each event was handed to `js.publish`, the last PubAck, and what failed."""

    times: dict[str, float] = field(default_factory=dict)
    last_ack: float = math.nan
    failures: Counter[str] = field(default_factory=Counter)

    def per_s(self) -> float:
        """Acknowledged publishes per second, from the first publish to the last PubAck."""
        acked = len(self.times) - sum(self.failures.values())
        span = self.last_ack - min(self.times.values(), default=math.nan)
        return acked / span if span > 0 else math.nan


async def _publish_one(js: JetStreamContext, contender: Contender, event: Event, result: Published) -> None:
    result.times[event.id] = time.time()
    try:
        await js.publish(contender.subject(event), event.body, headers=event.headers, timeout=PUBLISH_TIMEOUT_S)
    except (nats.errors.Error, TimeoutError) as exc:
        result.failures[type(exc).__name__] += 1
        return
    result.last_ack = time.time()  # the publish that completes last sets it last


async def publish_burst(
    js: JetStreamContext, contender: Contender, events: list[Event], deadline: float, in_flight: int = IN_FLIGHT
) -> Published:
    """Every event as fast as possible, at most `in_flight` awaiting a PubAck, until `deadline` (monotonic)."""
    result = Published()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(events) and time.monotonic() < deadline:
            event = events[next_index]
            next_index += 1
            await _publish_one(js, contender, event, result)

    await asyncio.gather(*(worker() for _ in range(min(in_flight, len(events)))))
    return result


async def publish_paced(
    js: JetStreamContext, contender: Contender, events: list[Event], rate: float, deadline: float
) -> Published:
    """Event i goes out at start + i/rate (at most IN_FLIGHT awaiting a PubAck), until `deadline` (monotonic)."""
    result = Published()
    slots = asyncio.Semaphore(IN_FLIGHT)
    tasks: list[asyncio.Task[None]] = []

    async def one(event: Event) -> None:
        try:
            await _publish_one(js, contender, event, result)
        finally:
            slots.release()

    start = time.monotonic()
    for i, event in enumerate(events):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.monotonic() >= deadline:
            break
        await slots.acquire()
        tasks.append(asyncio.create_task(one(event)))
    await asyncio.gather(*tasks)
    return result


async def stored_times(js: JetStreamContext, stream: str, only: set[str]) -> tuple[dict[str, float], int]:
    """Stored timestamp (epoch s) per envelope id (`ce-id` header) in `only`, and how many messages repeated an id."""
    state = (await js.stream_info(stream)).state
    if not state.messages:
        return {}, 0
    seqs = list(range(state.first_seq, state.last_seq + 1))
    times: dict[str, float] = {}
    repeats = 0
    for start in range(0, len(seqs), READ_CONCURRENCY):
        chunk = seqs[start : start + READ_CONCURRENCY]
        messages = await asyncio.gather(*(js.get_msg(stream, seq) for seq in chunk))
        for message in messages:
            event_id = (message.headers or {}).get("ce-id") or orjson.loads(message.data or b"{}").get("id", "")
            if message.time is None or event_id not in only:
                continue
            if event_id in times:
                repeats += 1
                continue
            times[event_id] = message.time.timestamp()
    return times, repeats


async def stream_count(js: JetStreamContext, stream: str) -> int:
    try:
        return int((await js.stream_info(stream)).state.messages)
    except NotFoundError:
        return 0


async def consumer_counts(js: JetStreamContext, contender: Contender) -> dict[str, dict[str, int]]:
    """Redelivered and still unacked messages per durable consumer."""
    counts = {}
    for stream, durable in contender.consumers:
        info = await js.consumer_info(stream, durable)
        counts[durable] = {
            "redelivered": int(info.num_redelivered or 0),
            "ack_pending": int(info.num_ack_pending or 0),
            "pending": int(info.num_pending or 0),
        }
    return counts


def warnings_in(log: Path) -> list[str]:
    """Every line the process logged so far but the relay's summary at exit: the gate logs only at
    WARNING and above, the relay nothing else, so anything here is a warning, an error or a traceback."""
    with contextlib.suppress(OSError):
        lines = log.read_text(errors="replace").splitlines()
        return [line for line in lines if line.strip() and not RELAY_SUMMARY.match(line)]
    return []


def hop_ms(start: dict[str, float], end: dict[str, float]) -> list[float]:
    """Sorted end - start in ms over the ids present in both."""
    return sorted((end[i] - start[i]) * 1000 for i in start.keys() & end.keys())


# --- phases --------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    """One contender in one phase."""

    contender: str
    phase: str
    round_no: int
    events: int
    published: int
    published_per_s: float
    publish_failures: Counter[str]
    delivered: int
    duplicates: int
    elapsed_s: float
    hops_ms: dict[str, list[float]]
    cpu_ms_per_event: dict[str, float]
    consumers: dict[str, dict[str, int]]
    stored: dict[str, int]
    warnings: list[str]

    @property
    def delivered_per_s(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def redelivered(self) -> int:
        return sum(c["redelivered"] for c in self.consumers.values())

    def hop(self, name: str, q: float) -> float:
        return percentile(self.hops_ms.get(name, []), q)

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "phase": self.phase,
            "round": self.round_no,
            "events": self.events,
            "published": self.published,
            "published_per_s": _rounded(self.published_per_s),
            "publish_failures": dict(self.publish_failures),
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "elapsed_s": round(self.elapsed_s, 3),
            "delivered_per_s": round(self.delivered_per_s, 1),
            "latency_ms": {
                name: {
                    "count": len(values),
                    "p50": _rounded(percentile(values, 0.50)),
                    "p99": _rounded(percentile(values, 0.99)),
                    "max": _rounded(_last(values)),
                }
                for name, values in self.hops_ms.items()
            },
            "cpu_ms_per_event": {k: round(v, 3) for k, v in self.cpu_ms_per_event.items()},
            "consumers": self.consumers,
            "stored": self.stored,
            "log_warnings": len(self.warnings),
        }


def _label(r: PhaseResult) -> str:
    return f"{r.phase} {r.round_no}" if r.phase == "throughput" else r.phase


def _ratio(over: float, under: float) -> float:
    return over / under if under else math.nan


def _last(values: list[float]) -> float:
    return values[-1] if values else math.nan


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


@dataclass
class Context:
    """The bench's connections and the servers' PIDs."""

    js: JetStreamContext
    sub_nc: NATS
    nats_server: RunningServer
    valkey_server: RunningServer
    workdir: Path
    register_stop: Callable[[subprocess.Popen[bytes]], None]


async def run_phase(
    ctx: Context, contender: Contender, phase: str, round_no: int, events: list[Event], args: argparse.Namespace
) -> PhaseResult:
    """Fresh streams and process, warm-up, the timed part with CPU around it, then the counts."""
    js = ctx.js
    await reset_streams(js, contender)
    log = ctx.workdir / f"{contender.name}-{phase}-{round_no}.log"
    proc = spawn(contender.argv, contender.env, log)
    ctx.register_stop(proc)
    try:
        await wait_ready(js, contender, proc, log)
        collector = Collector()
        sub = await ctx.sub_nc.subscribe(contender.out_subject, cb=collector.on_message)
        await natsflush.flush(ctx.sub_nc, 5.0)
        try:
            if args.warmup:
                warm = make_events(args.warmup, f"{phase}-warmup")
                collector.expect([e.id for e in warm])
                await publish_burst(js, contender, warm, time.monotonic() + WARMUP_TIMEOUT_S)
                if not await collector.wait(WARMUP_TIMEOUT_S):
                    raise RuntimeError(
                        f"{contender.name}: {phase} warm-up delivered {len(collector.arrivals)} of {args.warmup} "
                        f"in {WARMUP_TIMEOUT_S:.0f}s; log:\n{tail(log)}"
                    )
            return await timed_part(ctx, contender, phase, round_no, events, args, proc, collector, log)
        finally:
            await sub.unsubscribe()
    finally:
        await asyncio.get_running_loop().run_in_executor(None, stop, proc)


async def timed_part(
    ctx: Context,
    contender: Contender,
    phase: str,
    round_no: int,
    events: list[Event],
    args: argparse.Namespace,
    proc: subprocess.Popen[bytes],
    collector: Collector,
    log: Path,
) -> PhaseResult:
    js = ctx.js
    pids = {
        contender.name: proc.pid,
        "nats-server": ctx.nats_server.pid,
        "valkey-server": ctx.valkey_server.pid,
        "bench": os.getpid(),
    }
    ids = [e.id for e in events]
    collector.expect(ids)
    warm_duplicates = collector.duplicates
    started_mono = time.monotonic()
    deadline = started_mono + args.duration_cap
    drain: subprocess.Popen[bytes] | None = None
    try:
        if phase == "throughput":
            # The backlog is stored while nothing consumes, then a fresh process drains it: its
            # capacity alone, not shared with (nor capped by) the publisher's fsyncs.
            await asyncio.get_running_loop().run_in_executor(None, stop, proc)
            published = await publish_burst(js, contender, events, deadline)
            drain = spawn(contender.argv, contender.env, log.with_suffix(".drain.log"))
            ctx.register_stop(drain)
            pids[contender.name] = drain.pid
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(collector.first.wait(), max(0.0, deadline - time.monotonic()))
            before_cpu = {name: cpu_ticks(pid) for name, pid in pids.items()}
        else:
            before_cpu = {name: cpu_ticks(pid) for name, pid in pids.items()}
            published = await publish_paced(js, contender, events, args.rate, deadline)
        await collector.wait(deadline - time.monotonic())
        after_cpu = {name: cpu_ticks(pid) for name, pid in pids.items()}
    finally:
        if drain is not None:
            await asyncio.get_running_loop().run_in_executor(None, stop, drain)
    arrivals = {i: collector.arrivals[i] for i in ids if i in collector.arrivals}
    start = min(arrivals.values(), default=math.nan) if drain else min(published.times.values(), default=math.nan)
    elapsed = max(arrivals.values()) - start if arrivals else time.monotonic() - started_mono
    delivered = len(arrivals)
    cpu = {name: (after_cpu[name] - before_cpu[name]) * 1000 / CLK_TCK / max(1, delivered) for name in pids}
    hops: dict[str, list[float]] = {"total": hop_ms(published.times, arrivals)}
    stored: dict[str, int] = {}
    if is_gate(contender.name):
        stored = {s: await stream_count(js, s) for s in GATE_STREAMS}
        if phase == "latency":
            timed = set(published.times)
            event_times, _ = await stored_times(js, EVENTS_STREAM, timed)
            invocation_times, repeats = await stored_times(js, INVOCATIONS_STREAM, timed)
            hops["event->invocation"] = hop_ms(published.times, invocation_times)
            hops["invocation->delivery"] = hop_ms(invocation_times, arrivals)
            hops["publish->event stored"] = hop_ms(published.times, event_times)
            hops["event stored->invocation stored"] = hop_ms(event_times, invocation_times)
            stored["invocation id repeats"] = repeats
    else:
        stored = {RELAY_STREAM: await stream_count(js, RELAY_STREAM)}
        if phase == "latency":
            in_times, _ = await stored_times(js, RELAY_STREAM, set(published.times))
            hops["publish->stored"] = hop_ms(published.times, in_times)
            hops["stored->delivery"] = hop_ms(in_times, arrivals)
    consumers = await consumer_counts(js, contender)
    return PhaseResult(
        contender=contender.name,
        phase=phase,
        round_no=round_no,
        events=len(events),
        published=len(published.times),
        published_per_s=published.per_s(),
        publish_failures=published.failures,
        delivered=delivered,
        duplicates=collector.duplicates - warm_duplicates,
        elapsed_s=elapsed,
        hops_ms=hops,
        cpu_ms_per_event=cpu,
        consumers=consumers,
        stored=stored,
        warnings=warnings_in(log) + (warnings_in(log.with_suffix(".drain.log")) if drain else []),
    )


async def bench(
    workdir: Path,
    nats_server: RunningServer,
    valkey_server: RunningServer,
    args: argparse.Namespace,
    register_stop: Callable[[subprocess.Popen[bytes]], None],
) -> list[PhaseResult]:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # like Ctrl-C
    nc = await nats.connect(nats_server.url, name="bench-publisher", connect_timeout=2)
    sub_nc = await nats.connect(nats_server.url, name="bench-subscriber", connect_timeout=2)
    try:
        ctx = Context(nc.jetstream(), sub_nc, nats_server, valkey_server, workdir, register_stop)
        runners = contenders(workdir, nats_server.url, valkey_server.url, args.journeys, args.only)
        results = []
        # Throughput rounds interleave the contenders, so a slow minute of the disk does not fall on one alone.
        plan = [("throughput", n, args.events) for n in range(1, args.rounds + 1)]
        plan.append(("latency", 1, args.latency_events))
        for phase, round_no, count in plan:
            events = make_events(count, f"{phase}-{round_no}")  # fresh ids each round
            for contender in runners:
                pace = "as fast as possible" if phase == "throughput" else f"at {args.rate:g}/s"
                print(
                    f"# {contender.name} {phase} {round_no}: {args.warmup} warm-up + {count} events {pace}", flush=True
                )
                results.append(await run_phase(ctx, contender, phase, round_no, events, args))
        return results
    finally:
        await sub_nc.close()
        await nc.close()


# --- report --------------------------------------------------------------------------------------


def _pair(r: PhaseResult, hop: str) -> str:
    values = r.hops_ms.get(hop)
    if not values or r.phase != "latency":
        return "-"
    return f"{r.hop(hop, 0.5):.2f}/{r.hop(hop, 0.99):.2f}"


def report(results: list[PhaseResult], args: argparse.Namespace) -> dict[str, Any]:
    """Print the tables; return the figures for --json."""
    print()
    head = f"{'contender':<9} {'phase':<12} {'events':>6} {'delivered':>9} {'dup':>3} {'redeliv':>7}"
    head += f" {'published/s':>11} {'delivered/s':>11}  {'ev->inv ms':>16} {'inv->dlv ms':>16} {'total ms':>16}"
    print(head)
    print(" " * 78 + "".join(f"{'p50/p99':>17}" for _ in range(3)))
    for r in results:
        line = f"{r.contender:<9} {_label(r):<12} {r.events:>6} {r.delivered:>9} {r.duplicates:>3} {r.redelivered:>7}"
        line += f" {r.published_per_s:>11.1f} {r.delivered_per_s:>11.1f}  {_pair(r, 'event->invocation'):>16}"
        line += f" {_pair(r, 'invocation->delivery'):>16} {_pair(r, 'total'):>16}"
        print(line)
    figures: dict[str, Any] = {"phases": [r.as_dict() for r in results]}
    rates: dict[str, list[float]] = {}
    for r in results:
        if r.phase == "throughput":
            rates.setdefault(r.contender, []).append(r.delivered_per_s)
    print()
    for name, per_round in rates.items():
        print(f"median delivered/s {name:<9} {statistics.median(per_round):8.1f}")
    pairs = (("gate", "gate-nj"), ("gate", "relay"), ("gate", "relay-js"), ("gate", "relay2"), ("relay2", "relay"))
    for top, bottom in pairs:
        if top in rates and bottom in rates:
            ratio = _ratio(statistics.median(rates[top]), statistics.median(rates[bottom]))
            rounds = " ".join(f"{_ratio(a, b):.2f}" for a, b in zip(rates[top], rates[bottom], strict=True))
            print(f"ratio {top}/{bottom} (throughput, medians): {ratio:.2f}x (per round: {rounds})")
            figures[f"ratio_{top}_{bottom}_throughput".replace("-", "_")] = round(ratio, 3)

    print()
    print("latency breakdown, ms (latency phase)   p50      p99      max")
    for r in results:
        if r.phase != "latency":
            continue
        for hop, values in r.hops_ms.items():
            label = f"{r.contender} {hop}"
            print(f"  {label:<36} {r.hop(hop, 0.5):>7.2f}  {r.hop(hop, 0.99):>7.2f}  {_last(values):>7.2f}")

    print()
    procs = ["contender", "nats-server", "valkey-server", "bench"]
    head = f"{'CPU ms per delivered event':<27}" + "".join(f"{p:>14}" for p in procs)
    print(head + f"{'total':>9}{'contender busy':>16}")
    for r in results:
        cells = [r.cpu_ms_per_event.get(r.contender, 0.0)] + [r.cpu_ms_per_event[p] for p in procs[1:]]
        busy = cells[0] * r.delivered_per_s / 10  # ms/event x events/s = ms/s; /10 is % of one core
        label = f"{r.contender} {_label(r)}"
        print(f"{label:<27}" + "".join(f"{c:>14.3f}" for c in cells) + f"{sum(cells):>9.3f}{busy:>15.0f}%")

    notes = []
    for r in results:
        label = f"{r.contender} {_label(r)}"
        if r.delivered < r.events:
            notes.append(f"{label}: only {r.delivered} of {r.events} delivered within {args.duration_cap:g}s")
        if r.publish_failures:
            notes.append(f"{label}: publish failures {dict(r.publish_failures)}")
        if r.duplicates:
            notes.append(f"{label}: {r.duplicates} duplicate deliveries")
        if r.redelivered:
            notes.append(f"{label}: {r.redelivered} JetStream redeliveries {r.consumers}")
        if r.stored.get(DLQ_STREAM) or r.stored.get(AUDIT_STREAM):
            notes.append(
                f"{label}: dead letters {r.stored.get(DLQ_STREAM)}, audit records {r.stored.get(AUDIT_STREAM)}"
            )
        if r.warnings:
            notes.append(f"{label}: {len(r.warnings)} log warnings, first: {r.warnings[0][:300]}")
    print()
    print(
        "\n".join(notes)
        if notes
        else "no missing, duplicate or redelivered events; no publish failures; no log warnings"
    )
    figures["setup"] = {
        "events": args.events,
        "latency_events": args.latency_events,
        "rate_per_s": args.rate,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "duration_cap_s": args.duration_cap,
        "publish_in_flight": IN_FLIGHT,
        "data_bytes": DATA_BYTES,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "nats_sync_interval": "always",
        "journeys": args.journeys,
    }
    return figures


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the throughput phase (default 20000)")
    parser.add_argument("--rate", type=float, default=200.0, help="events/s in the latency phase (default 200)")
    parser.add_argument("--latency-events", type=int, default=1_000, help="events in the latency phase (default 1000)")
    parser.add_argument("--warmup", type=int, default=200, help="uncounted events before each phase (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds, interleaved; medians (default 3)")
    parser.add_argument("--duration-cap", type=float, default=120.0, help="time cap per timed part, s (default 120)")
    parser.add_argument(
        "--journeys",
        choices=("on", "off", "both"),
        default="on",
        help="the gate with journey records (on, default), without (off), or both to compare (gate/gate-nj)",
    )
    parser.add_argument("--only", default="", help=f"comma-separated contenders to run, of {', '.join(CONTENDERS)}")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server data and process logs)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    if set(args.only) - set(CONTENDERS):
        parser.error(f"--only takes contenders of {', '.join(CONTENDERS)}")
    if args.events < 1 or args.latency_events < 1 or args.warmup < 0 or args.rate <= 0:
        parser.error("--events, --latency-events and --rate must be positive, --warmup not negative")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1-10")
    if not 0 < args.duration_cap <= MAX_CAP_S:
        parser.error(f"--duration-cap must be in (0, {MAX_CAP_S:.0f}] s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def measure() -> list[PhaseResult]:
        with contextlib.ExitStack() as cleanup:
            servers = start_servers(cleanup, "hub-bench-gate-", args.keep)

            def register_stop(proc: subprocess.Popen[bytes]) -> None:
                cleanup.callback(stop, proc)  # a second stop of an exited process is a no-op

            return run_loop(asyncio.run, bench(servers.workdir, servers.nats, servers.valkey, args, register_stop))

    return run_bench(measure, lambda results: report(results, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
