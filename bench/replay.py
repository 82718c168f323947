"""Replay benchmark: a replay job over N stored events, to the shadow subject and through the gate.

    .venv/bin/python bench/replay.py [--events N] [--rate R] [--batch B] [--json PATH]

It starts its own nats-server (JetStream on file storage, `sync_interval: always` as the hub's
embedded default) in a temporary directory on loopback, creates the hub's streams, and stores N
events (default 10,000) of one connector in HUB_EVENTS as the ingress publishes them. Then, for
each mode, it creates a replay job and runs it with the hub's own JobRunner (hub/jobs/runner.py)
at `HUB_REPLAY_RATE` R (default 100,000/s, so the pacing does not bound the figure), and measures
from the job's creation to its end: the counting pass, every batched read, every publish with its
PubAck, and the progress writes to the jobs bucket.

- subject: every event to `hub.replay.<tenant>.<connector>.<type>` (HUB_REPLAY);
- gate: every event decided with the catalog (one route, allowed) and its invocation published to
  HUB_INVOCATIONS (no dispatch consumer runs: the figure is the replay's, not the targets').

It prints events/s per mode and whether each meets the target (1,000/s). The server is stopped by
its PID at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from events.envelope import Envelope, rfc3339
from events.streams import INVOCATIONS_STREAM, REPLAY_STREAM, StreamSettings, ensure_streams
from events.subjects import event_subject
from hub.app.embedded import start_nats
from hub.gate.catalog import build_catalog
from hub.jobs import replay
from hub.jobs.kind import BATCH_SIZE
from hub.jobs.runner import JobRunner
from hub.jobs.selection import Selection
from hub.jobs.store import JobStore
from hub.runtime.live import Live
from schemas.loader import load_specs

TARGET_PER_S = 1000.0
IN_FLIGHT = 256
SPECS = """\
apiVersion: hub/v1
kind: Connector
metadata: {name: gh, tenant: acme}
spec:
  type: webhook
  provider: github
  secrets: [{secretRef: {source: env, name: UNUSED}}]
  routes:
    - name: out
      match: {types: ["github.*"]}
      target: {subject: svc.acme.out}
---
apiVersion: hub/v1
kind: Policy
metadata: {name: default, tenant: acme}
spec:
  allowedSubjects: [svc.acme]
  rules:
    - {name: all, effect: allow}
"""


async def fill(nc: NATS, count: int) -> float:
    """Store `count` events as the ingress does; the seconds it took."""
    js = nc.jetstream()
    started = time.perf_counter()
    pending: set[asyncio.Future[Any]] = set()
    for n in range(count):
        now = rfc3339(time.time())
        envelope = Envelope(
            id=f"ev-{n}",
            source="hub://acme/gh",
            type="github.push",
            time=now,
            data={"n": n, "ref": "refs/heads/main"},
            hubtenant="acme",
            hubconnector="gh",
            hubprovider="github",
            hubreceivedat=now,
            hubverified="hmac-sha256",
            hubbodysha256="0" * 64,
        )
        headers = envelope.to_headers() | {"Nats-Msg-Id": f"acme:gh:{envelope.id}"}
        subject = event_subject("acme", "gh", envelope.type)
        pending.add(asyncio.ensure_future(js.publish(subject, envelope.to_json(), headers=headers)))
        if len(pending) >= IN_FLIGHT:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*pending)
    return time.perf_counter() - started


async def run_mode(nc: NATS, store: JobStore, runner: JobRunner, mode: replay.Mode) -> dict[str, Any]:
    """One replay job to its end: the elapsed seconds and events per second."""
    started = time.perf_counter()
    job = await replay.start(
        store, replay.ReplayRequest(Selection(tenant="acme", connector="gh"), mode), created_by="bench"
    )
    await runner.run_once()
    elapsed = time.perf_counter() - started
    stored = await store.get(job.id)
    assert stored is not None
    ended = stored.job
    stream = REPLAY_STREAM if mode == "subject" else INVOCATIONS_STREAM
    stored_messages = (await nc.jetstream().stream_info(stream)).state.messages
    return {
        "mode": mode,
        "state": ended.state,
        "events": ended.progress.done,
        "stored": stored_messages,
        "seconds": round(elapsed, 3),
        "events_per_s": round(ended.progress.done / elapsed, 1),
    }


async def bench(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    server = start_nats(workdir / "nats", sync_interval=args.sync)
    try:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await ensure_streams(js, StreamSettings())
            fill_s = await fill(nc, args.events)
            print(f"stored {args.events} events in {fill_s:.1f}s", file=sys.stderr)
            specs = workdir / "specs.yaml"
            specs.write_text(SPECS)
            store = await JobStore.open(js)
            runner = JobRunner(nc, store, Live(build_catalog(load_specs(specs))), rate=args.rate, batch_size=args.batch)
            return [await run_mode(nc, store, runner, mode) for mode in ("subject", "gate")]
        finally:
            await nc.close()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100_000.0, help="HUB_REPLAY_RATE for the run")
    parser.add_argument("--batch", type=int, default=BATCH_SIZE, help="events per job step")
    parser.add_argument(
        "--sync", default="always", help="the server's sync_interval: always (the hub's default), default, 2m, ..."
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as workdir, contextlib.suppress(KeyboardInterrupt):
        results = asyncio.run(bench(args, Path(workdir)))
        ok = True
        for result in results:
            meets = result["events_per_s"] >= TARGET_PER_S and result["state"] == "succeeded"
            ok = ok and meets
            print(
                f"{result['mode']:<8} {result['events']} events in {result['seconds']}s: "
                f"{result['events_per_s']}/s ({result['stored']} stored) "
                f"{'meets' if meets else 'MISSES'} the target of {TARGET_PER_S:.0f}/s"
            )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0 if ok else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
