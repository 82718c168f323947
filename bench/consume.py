"""Consume benchmark: CPU per message of the ways a gate consumer can fetch, run and ack.

    .venv/bin/python bench/consume.py [--messages 20000]

For each way, in its own process: a fresh nats-server (JetStream, file storage, default sync: the
disk is not what is measured here) on loopback, a stream pre-filled with N messages of 1 KB with
eleven headers (as an envelope's `ce-*` set), then a durable explicit-ack pull consumer that acks
every message; CPU of this process (time.process_time) from the consumer's start to the last ack.

- raw: a bare nats-py fetch loop, 32 per fetch, a task per message, at most 32 at once
  (what bench/relay_server.py does);
- faststream-workers: FastStream's pull subscriber with `max_workers=32` (a memory stream, a
  semaphore and a task group per message);
- faststream-sequential: FastStream's sequential pull subscriber (fetch 32, run each, wait for all);
- faststream-inflight: the sequential subscriber with the hub's `InFlight` handler
  (hub/gate/inflight.py): what the gate runs.

The nats-server of each way is stopped by its PID at the end, also on error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import nats.errors
from faststream import AckPolicy as HandlerAckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from hub.app.embedded import start_nats
from hub.gate.inflight import InFlight

WAYS = ("raw", "faststream-workers", "faststream-sequential", "faststream-inflight")
STREAM, SUBJECTS, DURABLE = "BENCH_CONSUME", "bench.consume.>", "bench-consume"
BATCH = 32
HEADERS = {f"ce-attribute{i}": f"value-{i}-of-an-envelope-attribute" for i in range(10)}
BODY = b"x" * 1024
TIMEOUT_S = 120.0


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=DURABLE,
        filter_subject=SUBJECTS,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=30,
        max_deliver=-1,
        max_ack_pending=20_000,
    )


async def fill(url: str, count: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECTS]))
    slots = asyncio.Semaphore(256)

    async def one(n: int) -> None:
        async with slots:
            await js.publish(f"bench.consume.{n % 10}", BODY, headers=HEADERS | {"Nats-Msg-Id": str(n)})

    await asyncio.gather(*(one(n) for n in range(count)))
    await nc.close()


class Counter:
    def __init__(self, count: int) -> None:
        self.left = count
        self.done = asyncio.Event()

    def acked(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()


async def raw(url: str, counter: Counter) -> Callable[[], Awaitable[None]]:
    nc = await nats.connect(url)
    psub = await nc.jetstream().pull_subscribe(SUBJECTS, DURABLE, stream=STREAM, config=consumer_config())
    slots = asyncio.Semaphore(BATCH)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(msg: Msg) -> None:
        try:
            await msg.ack()
            counter.acked()
        finally:
            slots.release()

    async def fetching() -> None:
        while True:
            try:
                messages = await psub.fetch(BATCH, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in messages:
                await slots.acquire()
                task = asyncio.create_task(handle(msg))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    loop = asyncio.create_task(fetching())

    async def stop() -> None:
        loop.cancel()
        await nc.close()

    return stop


async def faststream(url: str, counter: Counter, way: str) -> Callable[[], Awaitable[None]]:
    broker = NatsBroker(url, apply_types=False, logger=logging.getLogger("bench.consume"), log_level=logging.DEBUG)

    async def decoder(message: Any) -> Any:
        return message

    async def handle(message: Any) -> None:
        await message.ack()
        counter.acked()

    options: dict[str, Any] = {"max_workers": BATCH} if way == "faststream-workers" else {}
    handler = InFlight(BATCH).detach(handle) if way == "faststream-inflight" else handle
    broker.subscriber(
        SUBJECTS,
        stream=JStream(STREAM, declare=False),
        durable=DURABLE,
        config=consumer_config(),
        pull_sub=PullSub(batch_size=BATCH, timeout=1.0),
        ack_policy=HandlerAckPolicy.MANUAL,
        decoder=decoder,
        **options,
    )(handler)
    await broker.start()
    return broker.stop


async def measure(way: str, count: int) -> tuple[float, float]:
    """(CPU ms per message, messages per second) of one way."""
    with tempfile.TemporaryDirectory(prefix="hub-bench-consume-") as workdir:
        server = start_nats(Path(workdir), sync_interval="default")
        try:
            await fill(server.url, count)
            counter = Counter(count)
            cpu, wall = time.process_time(), time.monotonic()
            stop = await (raw(server.url, counter) if way == "raw" else faststream(server.url, counter, way))
            try:
                await asyncio.wait_for(counter.done.wait(), TIMEOUT_S)
                cpu, wall = time.process_time() - cpu, time.monotonic() - wall
            finally:
                await stop()
        finally:
            server.stop()
    return cpu * 1000 / count, count / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per way (default 20000)")
    parser.add_argument("--way", choices=WAYS, help="measure this way only, in this process")
    args = parser.parse_args()
    if not 0 < args.messages <= 200_000:
        parser.error("--messages must be in 1..200000")
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.way:
        cpu_ms, per_s = asyncio.run(measure(args.way, args.messages))
        print(f"{args.way} {cpu_ms:.4f} {per_s:.0f}")
        return 0
    print(f"{'way':<24}{'CPU ms/message':>16}{'messages/s':>12}{'vs raw':>8}")
    base = None
    for way in WAYS:  # each in its own process: no state left behind by the one before
        argv = [sys.executable, __file__, "--way", way, "--messages", str(args.messages)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S * 2, check=True).stdout
        _, cpu_text, rate_text = out.split()
        cpu_ms = float(cpu_text)
        base = base or cpu_ms
        print(f"{way:<24}{cpu_ms:>16.3f}{float(rate_text):>12.0f}{cpu_ms / base:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
