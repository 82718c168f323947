"""The two gate consumers on a FastStream broker: durable pull consumers shared by every hub process.

FastStream owns consumption (fetching, parsing, the handler lifecycle); each handler runs in its own
task from `InFlight`, which bounds how many run at once (see hub/gate/inflight.py for why not
FastStream's `max_workers`). Publishes go through the hub's own nats-py JetStream context, which
is the cheaper path per message. Both consumers
have no MaxDeliver: the policy consumer retries failed publishes for ever (an event is never
dropped), and the dispatcher counts real attempts itself so that waiting does not use them up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy as JetStreamAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from redis.asyncio import Redis

from events.journey import JourneyWriter
from events.streams import EVENTS_STREAM, INVOCATIONS_STREAM
from events.subjects import EVENTS_PREFIX, INVOCATIONS_PREFIX
from hub.gate.breaker import BreakerState
from hub.gate.catalog import GateCatalog
from hub.gate.dispatch_consumer import Dispatcher
from hub.gate.inflight import InFlight
from hub.gate.limiter import Limiter
from hub.gate.metrics import GateMetrics
from hub.gate.policy_consumer import PolicyConsumer
from hub.gate.targets import HttpDispatcher, SubjectDispatcher
from hub.ingest.activity import Activity
from hub.runtime.egress import Lookup, system_lookup
from hub.runtime.live import Live
from hub.settings import nats_servers

log = logging.getLogger(__name__)

POLICY_DURABLE = "hub-policy"
DISPATCH_DURABLE = "hub-dispatch"
ACK_WAIT_S = 30.0
"""A message a crashed process held is redelivered after this; long dispatches send heartbeats."""
POLICY_WORKERS = 128
DISPATCH_WORKERS = 128
MAX_ACK_PENDING = 20_000
"""Throttled invocations wait as pending acks; the cap must leave room for every route's backlog."""
DRAIN_TIMEOUT_S = 10.0
"""How long a stopping gate waits for running handlers; JetStream redelivers what they held."""
FETCH_TIMEOUT_S = 1.0
"""How long one pull waits. A pull that started on an empty stream holds the messages it got
until its batch is full or this passes, so it bounds the extra latency when traffic resumes."""


def consumer_config(durable: str, filter_subject: str) -> ConsumerConfig:
    """A durable explicit-ack consumer that starts at the stream's first message and never gives up."""
    return ConsumerConfig(
        durable_name=durable,
        filter_subject=filter_subject,
        ack_policy=JetStreamAckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,
        max_ack_pending=MAX_ACK_PENDING,
    )


@dataclass
class Gate:
    """The running gate of one hub process."""

    broker: NatsBroker
    http: HttpDispatcher | None
    policy: PolicyConsumer | None
    dispatcher: Dispatcher | None
    handlers: list[InFlight]

    def breaker_states(self) -> dict[str, BreakerState] | None:
        """This process's circuit breakers by target key; None when it dispatches nothing."""
        return self.dispatcher.breaker_states() if self.dispatcher is not None else None

    async def stop(self) -> None:
        """Stop fetching; let the running handlers settle their messages (at most DRAIN_TIMEOUT_S) while
        the consumers' connection, which their acks go through, is still open; then close it and the
        HTTP client."""
        await asyncio.gather(*(subscriber.stop() for subscriber in self.broker.subscribers))
        await asyncio.gather(*(handlers.drain(DRAIN_TIMEOUT_S) for handlers in self.handlers))
        await self.broker.stop()
        if self.http is not None:
            await self.http.close()


async def start_gate(
    nats_url: str,
    nc: NATS,
    redis: Redis,
    catalog: Live[GateCatalog],
    metrics: GateMetrics,
    *,
    policy: bool,
    dispatch: bool,
    lookup: Lookup = system_lookup,
    journeys: bool = True,
    activity: Activity | None = None,
) -> Gate:
    """Start the consumers asked for; `nc` is the hub's connection, used for publishing; HTTP targets'
    names are resolved with `lookup` (tests map names to loopback addresses). `journeys=False` writes
    no journey records (bench/gate.py measures their cost so). Dead letters are counted per connector
    in `activity` (the status reporter flushes them for the error rate SLO)."""
    broker = NatsBroker(
        nats_servers(nats_url),  # one URL or a cluster's list (HUB_NATS_URL)
        name="connector-hub-gate",
        apply_types=False,
        logger=_faststream_logger(),
        log_level=logging.DEBUG,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )
    js = nc.jetstream()
    writer = JourneyWriter(nc) if journeys else None
    policy_consumer = PolicyConsumer(catalog, js, metrics, journeys=writer) if policy else None
    http = None
    dispatcher = None
    handlers: list[InFlight] = []
    if policy_consumer is not None:
        handlers.append(InFlight(POLICY_WORKERS))
        _subscribe(broker, EVENTS_STREAM, EVENTS_PREFIX, POLICY_DURABLE, POLICY_WORKERS)(
            handlers[-1].detach(policy_consumer.handle)
        )
    if dispatch:
        http = HttpDispatcher(lookup=lookup)
        dispatcher = Dispatcher(
            catalog,
            Limiter(redis),
            SubjectDispatcher(nc),
            http,
            js,
            metrics,
            ack_wait_s=ACK_WAIT_S,
            journeys=writer,
            activity=activity,
        )
        handlers.append(InFlight(DISPATCH_WORKERS))
        _subscribe(broker, INVOCATIONS_STREAM, INVOCATIONS_PREFIX, DISPATCH_DURABLE, DISPATCH_WORKERS)(
            handlers[-1].detach(dispatcher.handle)
        )
    await broker.start()
    log.info("gate consumers started", extra={"policy": policy, "dispatch": dispatch})
    return Gate(broker, http, policy_consumer, dispatcher, handlers)


def _subscribe(broker: NatsBroker, stream: str, prefix: str, durable: str, batch: int):  # type: ignore[no-untyped-def]
    """FastStream's sequential pull subscriber: it fetches up to `batch` messages and waits for
    their (detached, so quick) handlers before the next fetch."""
    return broker.subscriber(
        f"{prefix}.>",
        stream=JStream(stream, declare=False),
        durable=durable,
        config=consumer_config(durable, f"{prefix}.>"),
        pull_sub=PullSub(batch_size=batch, timeout=FETCH_TIMEOUT_S),
        ack_policy=AckPolicy.MANUAL,
        decoder=_raw,
        title=durable,
    )


class _EarlyFetchTimeout(logging.Filter):
    """Turns one known-harmless FastStream error into a debug line.

    nats-py's `fetch` raises the builtin TimeoutError (not its own) when the server's timeout status
    arrives just as the client's deadline passes; FastStream ignores only nats-py's TimeoutError,
    so its supervisor restarts the fetch loop, which is right, and logs it as an ERROR with a
    traceback, which is noise for whoever alerts on errors.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.exc_info and type(record.exc_info[1]) is TimeoutError:
            log.debug("pull fetch timed out early; FastStream restarted it")
            return False
        return True


class _SupervisorChatter(logging.Filter):
    """Drops FastStream's `callback for Task-N is being executed...`: its task supervisor logs it at
    INFO whenever a subscriber task ends, the hub's own stop included, and it says nothing to an
    operator (a task that failed is logged on its own, with its error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno < logging.WARNING and record.getMessage().endswith("is being executed..."))


def _faststream_logger() -> logging.Logger:
    logger = logging.getLogger("hub.gate.faststream")
    for kind in (_EarlyFetchTimeout, _SupervisorChatter):
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
    return logger


async def _raw(message: object) -> object:
    """Hand the handler the message itself (it reads bytes and headers, and acks).

    A coroutine on purpose: FastStream runs a plain function decoder in a worker thread, one
    thread-pool round trip per message.
    """
    return message
