"""The gate benchmark's baseline: a bare JetStream consume-and-republish relay.

A durable pull consumer (explicit ack, from the first message, no MaxDeliver) on the
`BENCH_RELAY_IN` stream; batches of up to 128 messages are fetched and handled concurrently, at most
128 at once (as the gate's consumers do: the next fetch goes out as soon as slots are
free). Each message is published, body and headers unchanged, to a core NATS subject, flushed
(a PING/PONG round trip: the server has it) and then acked. No policy, no limiter, no second
stream: one JetStream hop. `bench/gate.py` creates the stream and starts this as a subprocess:

    python bench/relay_server.py --nats-url nats://127.0.0.1:4222 [--out stream] [--hops 2]

With `--out stream` the republish is durable instead: each message is published with JetStream to
the output subject, which the bench's `BENCH_RELAY_OUT` stream stores (PubAck awaited, with a
`Nats-Msg-Id`), then acked. One JetStream hop and one stored republish: the least a relay that
stores what it hands on can do, as the gate stores every invocation.

With `--hops 2` it has the gate's shape without the gate's logic: a first relay publishes each
message to the `BENCH_RELAY_MID` stream (awaiting its PubAck, with a `Nats-Msg-Id`) and acks, a
second consumes that stream and republishes to the output subject as above. Two JetStream hops:
the ceiling of a design that stores every invocation durably, as docs/design.md §6 asks.

It runs on uvloop when that is installed, as the hub does, so the comparison is of the work done,
not of the event loop. It runs until SIGTERM or SIGINT (then finishes its in-flight messages, at
most DRAIN_TIMEOUT_S) or until --lifetime seconds have passed, and prints how many messages it
relayed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STREAM = "BENCH_RELAY_IN"
SUBJECTS = "bench.relay.in.>"
DURABLE = "bench-relay"
OUT_SUBJECT = "bench.relay.out"
MID_STREAM = "BENCH_RELAY_MID"
MID_PREFIX = "bench.relay.mid"
MID_DURABLE = "bench-relay-mid"
MSG_ID = "Nats-Msg-Id"
PUBLISH_TIMEOUT_S = 5.0
WORKERS = 128
FETCH_TIMEOUT_S = 1.0
ACK_WAIT_S = 30.0
MAX_ACK_PENDING = 20_000
FLUSH_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 10.0


def consumer_config(durable: str, subjects: str) -> ConsumerConfig:
    """The same shape as the gate's consumers (hub/gate/consumers.py)."""
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=subjects,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,
        max_ack_pending=MAX_ACK_PENDING,
    )


Forward = Callable[[Msg], Awaitable[None]]


def to_subject(nc: NATS, subject: str) -> Forward:
    """Core publish, then a flush: the server has the message when this returns."""

    async def forward(msg: Msg) -> None:
        await nc.publish(subject, msg.data, headers=msg.headers)
        await nc.flush(FLUSH_TIMEOUT_S)  # type: ignore[arg-type]  # annotated int; any float works

    return forward


def to_stream(nc: NATS, subject_for: Callable[[Msg], str], hop: str) -> Forward:
    """JetStream publish to `subject_for(msg)`, PubAck awaited, under the input's `Nats-Msg-Id`
    tagged with `hop` (so the output stream deduplicates as the gate's streams do)."""
    js = nc.jetstream()

    async def forward(msg: Msg) -> None:
        headers = dict(msg.headers or {})
        headers[MSG_ID] = f"{headers.get(MSG_ID, msg.reply)}:{hop}"
        await js.publish(subject_for(msg), msg.data, headers=headers, timeout=PUBLISH_TIMEOUT_S)

    return forward


def mid_subject(msg: Msg) -> str:
    """The middle stream's subject: its prefix and the input's last subject token."""
    return f"{MID_PREFIX}.{msg.subject.rsplit('.', 1)[-1]}"


class Relay:
    """Fetch, forward, ack; counts what it did and what failed."""

    def __init__(self, nc: NATS, stream: str, subjects: str, durable: str, forward: Forward, workers: int) -> None:
        self._nc = nc
        self._stream, self._subjects, self._durable = stream, subjects, durable
        self._forward = forward
        self._slots = asyncio.Semaphore(workers)
        self._workers = workers
        self._tasks: set[asyncio.Task[None]] = set()
        self.relayed = 0
        self.failed = 0

    async def handle(self, msg: Msg) -> None:
        try:
            await self._forward(msg)
        except (nats.errors.Error, TimeoutError):
            self.failed += 1
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()
            return
        await msg.ack()
        self.relayed += 1

    def _spawn(self, msg: Msg) -> None:
        task = asyncio.create_task(self.handle(msg))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._slots.release()

        task.add_done_callback(done)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch loop until `stop` is set; every message gets a slot before its task starts."""
        config = consumer_config(self._durable, self._subjects)
        psub = await self._nc.jetstream().pull_subscribe(
            self._subjects, self._durable, stream=self._stream, config=config
        )
        while not stop.is_set():
            try:
                messages = await psub.fetch(self._workers, timeout=FETCH_TIMEOUT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except nats.errors.ConnectionClosedError:
                break
            for msg in messages:
                await self._slots.acquire()
                self._spawn(msg)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=DRAIN_TIMEOUT_S)


async def main_async(args: argparse.Namespace) -> int:
    nc = await nats.connect(args.nats_url, name="bench-relay", connect_timeout=2)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(args.lifetime, stop.set)
    out = args.out_subject
    last_hop = to_stream(nc, lambda msg: out, "out") if args.out == "stream" else to_subject(nc, out)
    if args.hops == 1:
        relays = [Relay(nc, STREAM, SUBJECTS, DURABLE, last_hop, args.workers)]
    else:
        relays = [
            Relay(nc, STREAM, SUBJECTS, DURABLE, to_stream(nc, mid_subject, "mid"), args.workers),
            Relay(nc, MID_STREAM, MID_PREFIX + ".>", MID_DURABLE, last_hop, args.workers),
        ]
    try:
        await asyncio.gather(*(relay.run(stop) for relay in relays))
    finally:
        # Every handler has finished (or DRAIN_TIMEOUT_S passed): flush the last acks and close. Not
        # nc.drain(): draining a pull subscription waits on its inbox queue until the timeout.
        with contextlib.suppress(Exception):
            await nc.flush(FLUSH_TIMEOUT_S)  # type: ignore[arg-type]
        await nc.close()
    for hop, relay in enumerate(relays, 1):
        print(f"hop {hop}: relayed {relay.relayed}, failed {relay.failed}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--out-subject", default=OUT_SUBJECT)
    parser.add_argument("--hops", type=int, choices=(1, 2), default=1, help="JetStream hops (default 1)")
    parser.add_argument(
        "--out",
        choices=("subject", "stream"),
        default="subject",
        help="republish to a core subject and flush (default), or with JetStream to a stream, PubAck awaited",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help="batch size and in-flight cap (default 128)")
    parser.add_argument("--lifetime", type=float, default=3600.0, help="exit after this many seconds (default 3600)")
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
