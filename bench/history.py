"""History benchmark: list and show latency over a large HUB_EVENTS, on a fresh embedded nats-server.

    .venv/bin/python bench/history.py [--events N] [--connectors C] [--data-bytes B] [--queries Q]
                                      [--fill-cap S] [--prefault-gb G] [--json PATH] [--keep]

It starts its own nats-server (JetStream on file storage; `sync_interval` left at the server's
default while filling, since the figures are about reads) in a temporary directory, creates the
hub's streams, and fills HUB_EVENTS with N events (default 1,000,000) spread round-robin over C
connectors (default 100, ten tenants of ten), each published as the ingress publishes it (subject,
`ce-*` headers, `Nats-Msg-Id`), at most --in-flight awaiting their PubAck. For every event it also
writes the journey records the gate would (a `routed` record with the event's sequence and a
delivered `attempt`), with core NATS publishes as the gate does.

Then, on a quiet server, it measures with the hub's own reader (hub/history/events.py):

- list: the first page of 100 events of one connector, newest first (`GET /v1/events?tenant=T&
  connector=C&limit=100`), a random connector each time;
- show: one event by (tenant, connector, id) with its journey (`GET .../events/{event}`), a random
  event each time (the server's caches rarely hold its blocks), and again among the newest 1% of
  events (what is looked up most: recent deliveries);

and prints p50/p95/max of each and whether they meet the targets (list p95 < 200 ms, show p95 <
20 ms). The fill stops at --fill-cap seconds (the figures then say how many events there were).

A random show makes nats-server load blocks into new buffers, so the report also prints what new
memory costs on this machine (bench/fresh_memory.py): on a VM that hands freed memory back to its
host, that cost, not the hub's reads, sets the p95. --prefault-gb touches and frees that much memory
just before measuring; it changes the figures only where the kernel keeps freed pages a while
(docs/scaling.md, "History lookups on a VM").
Everything listens on loopback; the server is stopped by its PID at the end, also on error or
Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import orjson
from fresh_memory import describe, first_touch_us, page_reporting, prefault
from ingest import padded_json, percentile

from events.envelope import Envelope, rfc3339
from events.journey import JourneyWriter, RouteStep, attempt, routed
from events.streams import EVENTS_STREAM, JOURNEYS_STREAM, StreamSettings, ensure_streams
from events.subjects import event_subject
from hub.app.embedded import start_nats
from hub.history.events import EventQuery, list_events, show_event

PAGE = 100
LIST_TARGET_MS = 200.0
SHOW_TARGET_MS = 20.0
TYPES = ("github.push", "github.pull_request.opened", "github.issues.closed", "github.release.published")


def connectors(count: int) -> list[tuple[str, str]]:
    """`count` (tenant, connector) pairs, ten connectors per tenant."""
    return [(f"t{n // 10}", f"c{n:03d}") for n in range(count)]


def event_of(n: int, tenant: str, connector: str, data: bytes) -> tuple[str, bytes, dict[str, str]]:
    """Event number `n`: its subject, body and headers, as the ingress publishes it."""
    now = rfc3339(time.time())
    event_type = TYPES[n % len(TYPES)]
    envelope = Envelope(
        id=f"ev-{n}",
        source=f"hub://{tenant}/{connector}",
        type=event_type,
        time=now,
        data=orjson.Fragment(data),
        hubtenant=tenant,
        hubconnector=connector,
        hubprovider="github",
        hubreceivedat=now,
        hubverified="hmac-sha256",
        hubbodysha256="0" * 64,
    )
    headers = envelope.to_headers() | {"Nats-Msg-Id": f"{tenant}:{connector}:{envelope.id}"}
    return event_subject(tenant, connector, event_type), envelope.to_json(), headers


async def fill(nc: nats.NATS, args: argparse.Namespace) -> int:
    """Publish events and their journeys until --events or --fill-cap; how many were stored."""
    js = nc.jetstream()
    writer = JourneyWriter(nc)
    pairs = connectors(args.connectors)
    data = padded_json({"bench": "history"}, args.data_bytes)
    deadline = time.monotonic() + args.fill_cap
    started = time.monotonic()
    stored = 0
    for first in range(0, args.events, args.in_flight):
        if time.monotonic() > deadline:
            break
        numbers = range(first, min(first + args.in_flight, args.events))
        events = [(n, *pairs[n % len(pairs)]) for n in numbers]
        built = [event_of(n, tenant, connector, data) for n, tenant, connector in events]
        acks = await asyncio.gather(
            *(js.publish(subject, body, headers=headers, timeout=30) for subject, body, headers in built)
        )
        for (n, tenant, connector), (_, _, headers), ack in zip(events, built, acks, strict=True):
            event_id = f"ev-{n}"
            invocation = f"{headers['Nats-Msg-Id']}:out"
            step = RouteStep("out", "allow", "all", "rule all allows", invocation)
            await writer.write(tenant, connector, routed(event_id, ack.seq, TYPES[n % len(TYPES)], [step]))
            await writer.write(
                tenant,
                connector,
                attempt(event_id, invocation, "out", number=1, status=None, latency_ms=1.0, delivered=True),
            )
        await nc.flush(timeout=30)
        stored += len(events)
        if stored % (args.in_flight * 100) == 0:
            rate = stored / (time.monotonic() - started)
            print(f"# {stored} events stored ({rate:.0f}/s)", flush=True)
    return stored


async def settled_journeys(nc: nats.NATS, expected: int) -> int:
    """The journey records stored, once all `expected` are in or the count stops growing for a second:
    JetStream stores core publishes after the flush that sent them returned."""
    last, still_since = -1, time.monotonic()
    while True:
        count = int((await nc.jetstream().stream_info(JOURNEYS_STREAM)).state.messages)
        if count >= expected or time.monotonic() - still_since > 1.0:
            return count
        if count != last:
            last, still_since = count, time.monotonic()
        await asyncio.sleep(0.05)  # polling the stream's count, bounded by the stall check above


async def measure(nc: nats.NATS, stored: int, args: argparse.Namespace) -> dict[str, list[float]]:
    """Latency in ms of each list and show, one at a time."""
    rng = random.Random(7)  # the same queries every run
    pairs = connectors(args.connectors)
    timings: dict[str, list[float]] = {"list": [], "show": [], "show-recent": []}
    for _ in range(args.queries):
        tenant, connector = rng.choice(pairs)
        started = time.perf_counter()
        page = await list_events(nc, None, EventQuery(tenant=tenant, connector=connector, limit=PAGE))
        timings["list"].append((time.perf_counter() - started) * 1000)
        expected = min(PAGE, stored // len(pairs))
        if len(page.items) != expected:
            raise RuntimeError(f"list {tenant}/{connector}: {len(page.items)} events, expected {expected}")
    recent = max(1, stored // 100)
    for name, low in (("show", 0), ("show-recent", stored - recent)):
        for _ in range(args.queries):
            n = rng.randrange(low, stored)
            tenant, connector = pairs[n % len(pairs)]
            started = time.perf_counter()
            detail = await show_event(nc, None, tenant, connector, f"ev-{n}")
            timings[name].append((time.perf_counter() - started) * 1000)
            if [record.kind for record in detail.journey] != ["routed", "attempt"]:
                raise RuntimeError(f"show ev-{n}: journey {[r.kind for r in detail.journey]}")
    return {name: sorted(values) for name, values in timings.items()}


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    nc = await nats.connect(url, name="bench-history", max_outstanding_pings=10)
    try:
        await ensure_streams(nc.jetstream(), StreamSettings())
        started = time.monotonic()
        stored = await fill(nc, args)
        fill_s = time.monotonic() - started
        journeys = await settled_journeys(nc, 2 * stored)
        events = (await nc.jetstream().stream_info(EVENTS_STREAM)).state
        print(f"# filled {stored} events ({events.bytes / 1e6:.0f} MB) and {journeys} journey records in {fill_s:.0f}s")
        memory = {"first_touch_us": round(first_touch_us(), 2), "page_reporting": page_reporting()}
        if args.prefault_gb:
            print(f"# touched and freed {args.prefault_gb:g} GB in {prefault(args.prefault_gb):.1f}s", flush=True)
        timings = await measure(nc, stored, args)
    finally:
        await nc.close()
    return {
        "events": stored,
        "journey_records": journeys,
        "events_mb": round(events.bytes / 1e6),
        "memory": memory,
        "timings": timings,
    }


def report(figures: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Print p50/p95/max and the verdicts; return the figures for --json."""
    targets = {"list": LIST_TARGET_MS, "show": SHOW_TARGET_MS, "show-recent": SHOW_TARGET_MS}
    labels = {
        "list": f"list: first page of {PAGE}, newest first",
        "show": "show: one event with its journey",
        "show-recent": "show: one of the newest 1% of events",
    }
    summary: dict[str, Any] = {
        "events": figures["events"],
        "connectors": args.connectors,
        "journey_records": figures["journey_records"],
        "events_mb": figures["events_mb"],
        "queries": args.queries,
        "prefault_gb": args.prefault_gb,
        "memory": figures["memory"],
    }
    print()
    print(f"{figures['events']} events over {args.connectors} connectors, {args.queries} queries each")
    memory = figures["memory"]
    print(describe(memory["first_touch_us"], memory["page_reporting"]))
    print(f"{'':<44}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  target")
    for name, values in figures["timings"].items():
        p50, p95 = percentile(values, 0.50), percentile(values, 0.95)
        met = p95 < targets[name]
        verdict = f"p95 < {targets[name]:.0f} ms: {'met' if met else 'NOT met'}"
        print(f"{labels[name]:<44}{p50:>9.2f}{p95:>9.2f}{values[-1]:>9.2f}  {verdict}")
        summary[name] = {"p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "max_ms": round(values[-1], 3), "met": met}
    if figures["events"] < args.events:
        print(f"the fill stopped at --fill-cap ({args.fill_cap:g}s): {figures['events']} of {args.events} events")
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to store (default 1000000)")
    parser.add_argument("--connectors", type=int, default=100, help="connectors they spread over (default 100)")
    parser.add_argument("--data-bytes", type=int, default=512, help="size of each event's data (default 512)")
    parser.add_argument("--in-flight", type=int, default=1_000, help="publishes awaiting PubAck (default 1000)")
    parser.add_argument("--queries", type=int, default=300, help="lists and shows each (default 300)")
    parser.add_argument("--fill-cap", type=float, default=1_200.0, help="seconds the fill may take (default 1200)")
    parser.add_argument(
        "--prefault-gb", type=float, default=0.0, help="GB to touch and free before measuring (default 0)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (the server's data)")
    args = parser.parse_args(argv)
    if args.events < args.connectors or args.connectors < 1 or args.queries < 1 or args.in_flight < 1:
        parser.error("--connectors, --queries and --in-flight must be positive, --events at least --connectors")
    if not 0 < args.fill_cap <= 3_600:
        parser.error("--fill-cap must be in (0, 3600] s")
    if not 0 <= args.prefault_gb <= 16:
        parser.error("--prefault-gb must be in [0, 16]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-history-"))
    try:
        server = start_nats(workdir / "servers", sync_interval="default")
        try:
            figures = asyncio.run(bench(server.url, args))
        finally:
            server.stop()
    except KeyboardInterrupt:
        print("interrupted; server stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"# data in {workdir}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)
    summary = report(figures, args)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
